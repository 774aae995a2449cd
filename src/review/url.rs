//! Pull request URLs: only `https://<github host>/{owner}/{repo}/pull/{n}` (a trailing
//! `/files`, `/commits` or a fragment is allowed); every other shape gets an error saying what
//! is wrong and what is expected.

use reqwest::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrRef {
    pub owner: String,
    pub repo: String,
    pub number: u64,
}

impl PrRef {
    /// `owner/repo#n`
    pub fn slug(&self) -> String {
        format!("{}/{}#{}", self.owner, self.repo, self.number)
    }

    /// The cache key of one head: `owner/repo#n@sha`.
    pub fn cache_key(&self, head_sha: &str) -> String {
        format!("{}@{head_sha}", self.slug())
    }

    pub fn url(&self, host: &str) -> String {
        format!(
            "https://{host}/{}/{}/pull/{}",
            self.owner, self.repo, self.number
        )
    }
}

fn valid_name(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || extra.contains(&c))
}

/// Parse `raw` as a pull request URL on `host` (`github.com` or the Enterprise host).
pub fn parse(raw: &str, host: &str) -> Result<PrRef, String> {
    let example = format!("https://{host}/owner/repo/pull/123");
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(format!(
            "pr_url is empty; give a pull request URL such as {example}"
        ));
    }
    let url = Url::parse(raw)
        .map_err(|e| format!("pr_url `{raw}` is not a URL ({e}); expected {example}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "pr_url must use https, not `{}`; expected {example}",
            url.scheme()
        ));
    }
    let got = url.host_str().unwrap_or_default().to_lowercase();
    let got = got.strip_prefix("www.").unwrap_or(&got);
    if got != host {
        return Err(format!(
            "pr_url is on `{got}`, but this toolgate reads pull requests on `{host}` (review.github.web_host); expected {example}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(format!(
            "pr_url must carry no credentials or query; expected {example}"
        ));
    }
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let [owner, repo, kind, number, rest @ ..] = segments.as_slice() else {
        return Err(format!(
            "pr_url path `{}` is not /owner/repo/pull/NUMBER; expected {example}",
            url.path()
        ));
    };
    if *kind != "pull" {
        return Err(format!(
            "pr_url points to `{kind}`, not a pull request (`/pull/`); expected {example}"
        ));
    }
    if rest.len() > 1
        || rest
            .first()
            .is_some_and(|r| !["files", "commits", "checks"].contains(r))
    {
        return Err(format!(
            "pr_url has extra path `{}` after the number; expected {example}",
            rest.join("/")
        ));
    }
    if !valid_name(owner, 39, &[]) {
        return Err(format!(
            "pr_url owner `{owner}` may hold only letters, digits and hyphens (at most 39)"
        ));
    }
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    if !valid_name(repo, 100, &['_', '.']) {
        return Err(format!(
            "pr_url repository `{repo}` may hold only letters, digits, `.`, `_` and `-` (at most 100)"
        ));
    }
    let number: u64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        format!("pr_url pull request number `{number}` is not a positive whole number")
    })?;
    Ok(PrRef {
        owner: owner.to_string(),
        repo: repo.to_string(),
        number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_urls() {
        let ok = parse("https://github.com/acme/shop/pull/42/files", "github.com").expect("ok");
        assert_eq!(ok.cache_key("abc"), "acme/shop#42@abc");
        assert_eq!(
            parse("https://www.github.com/a/b.git/pull/1", "github.com")
                .expect("ok")
                .repo,
            "b"
        );
        for (bad, needle) in [
            ("", "empty"),
            ("github.com/a/b/pull/1", "not a URL"),
            ("http://github.com/a/b/pull/1", "must use https"),
            ("https://gitlab.com/a/b/pull/1", "is on `gitlab.com`"),
            ("https://github.com/a/b/issues/1", "points to `issues`"),
            (
                "https://github.com/a/b/pull/0",
                "not a positive whole number",
            ),
            (
                "https://github.com/a/b/pull/x",
                "not a positive whole number",
            ),
            ("https://github.com/a/b", "is not /owner/repo/pull/NUMBER"),
            ("https://github.com/a_b/c/pull/1", "owner `a_b`"),
            (
                "https://github.com/a/b/pull/1?x=1",
                "no credentials or query",
            ),
        ] {
            let err = parse(bad, "github.com").expect_err(bad);
            assert!(err.contains(needle), "{bad}: {err}");
        }
        assert!(parse("https://git.corp.example/a/b/pull/7", "git.corp.example").is_ok());
    }
}
