use std::time::Duration;

use serde_json::{Value, json};

use super::*;

fn principal(roles: &[&str]) -> Principal {
    Principal::new("bob", "Bob", roles.iter().map(|r| r.to_string()).collect())
}

fn caller() -> Principal {
    principal(&["toolgate.caller"])
}

fn ns(namespace: &str) -> Target {
    Target {
        namespace: Some(namespace.to_string()),
        ..Target::default()
    }
}

/// Decide one call against `set`.
fn decide(set: &PolicySet, tool: &str, risk: Risk, p: &Principal, target: &Target) -> Decision {
    decide_args(set, tool, risk, p, target, &json!({}))
}

fn decide_args(
    set: &PolicySet,
    tool: &str,
    risk: Risk,
    p: &Principal,
    target: &Target,
    args: &Value,
) -> Decision {
    set.decide(&PolicyInput {
        tool,
        risk,
        args,
        principal: p,
        target,
    })
}

fn set(yaml: &str) -> PolicySet {
    match PolicySet::from_sources(&[("test.yaml", yaml)]) {
        Ok(set) => set,
        Err(e) => panic!("test policy does not compile:\n{e}"),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    match PolicySet::from_sources(&[("test.yaml", yaml)]) {
        Ok(_) => panic!("expected problems in:\n{yaml}"),
        Err(e) => e.problems,
    }
}

fn approvals(d: &Decision) -> Option<u32> {
    match &d.effect {
        Effect::RequireApproval(rule) => Some(rule.approvals),
        _ => None,
    }
}

#[test]
fn deny_beats_approval_beats_allow_and_more_approvals_win() {
    let s = set(r#"
rules:
  - {name: allow-all, effect: allow}
  - {name: one, tools: ["k8s.*"], effect: {require_approval: {approvals: 1}}}
  - {name: three, tools: ["k8s.delete_*"], effect: {require_approval: {approvals: 3}}}
  - {name: two, tools: ["k8s.delete_*"], effect: {require_approval: {approvals: 2}}}
  - {name: no-exec, tools: [k8s.exec_command], effect: {deny: {message: exec is off}}}
"#);
    let p = caller();
    let t = Target::default();
    let d = decide(&s, "obs.query_metrics", Risk::Read, &p, &t);
    assert_eq!(
        (d.effect, d.rule.as_str()),
        (Effect::Allow, "test.yaml#allow-all")
    );
    let d = decide(&s, "k8s.rollout_restart", Risk::Write, &p, &t);
    assert_eq!((approvals(&d), d.rule.as_str()), (Some(1), "test.yaml#one"));
    let d = decide(&s, "k8s.delete_resource", Risk::Write, &p, &t);
    assert_eq!(
        (approvals(&d), d.rule.as_str()),
        (Some(3), "test.yaml#three")
    );
    let d = decide(&s, "k8s.exec_command", Risk::Write, &p, &t);
    assert_eq!(
        (d.effect, d.rule.as_str()),
        (
            Effect::Deny {
                message: "exec is off".into()
            },
            "test.yaml#no-exec"
        )
    );
}

#[test]
fn ties_go_to_the_earlier_rule_across_files_in_order() {
    let a = "rules:\n  - {name: first, effect: {require_approval: {approvals: 2, ttl: 10m}}}\n";
    let b = "rules:\n  - {name: second, effect: {require_approval: {approvals: 2, ttl: 5h}}}\n";
    let s = PolicySet::from_sources(&[("a.yaml", a), ("b.yaml", b)]).expect("compiles");
    let d = decide(&s, "x", Risk::Write, &caller(), &Target::default());
    assert_eq!(d.rule, "a.yaml#first");
    match d.effect {
        Effect::RequireApproval(rule) => assert_eq!(rule.ttl, Duration::from_secs(600)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tools_risk_and_roles_all_have_to_match() {
    let s = set(r#"
rules:
  - name: obs-reads
    tools: ["obs.query_*", "k8s.get_*"]
    risk: [read]
    roles: [sre, toolgate.caller]
    effect: allow
"#);
    let t = Target::default();
    let sre = principal(&["sre"]);
    let allowed = |tool, risk, p: &Principal| decide(&s, tool, risk, p, &t).effect == Effect::Allow;
    assert!(allowed("obs.query_logs", Risk::Read, &sre));
    assert!(allowed("k8s.get_resource", Risk::Read, &caller()));
    assert!(!allowed("obs.list_alerts", Risk::Read, &sre), "tool glob");
    assert!(!allowed("obs.query_logs", Risk::Write, &sre), "risk");
    assert!(
        !allowed("obs.query_logs", Risk::Read, &principal(&["viewer"])),
        "role"
    );
    assert!(
        !allowed("obs.query_logs", Risk::Read, &principal(&[])),
        "no role"
    );
}

#[test]
fn nothing_matching_denies_with_rule_none() {
    let s =
        set("rules:\n  - {name: reads, risk: [read], roles: [toolgate.caller], effect: allow}\n");
    let d = decide(
        &s,
        "k8s.get_resource",
        Risk::Read,
        &principal(&[]),
        &Target::default(),
    );
    assert_eq!(d.rule, NO_RULE);
    match d.effect {
        Effect::Deny { message } => assert!(
            message.starts_with("no policy rule allows k8s.get_resource for bob"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cel_conditions_decide_whether_a_rule_matches() {
    let s = set(r#"
rules:
  - {name: base, effect: {require_approval: {approvals: 1}}}
  - name: big-scale
    tools: [k8s.scale]
    when: 'args.replicas > 10 || target.namespace.startsWith("prod")'
    effect: {require_approval: {approvals: 2}}
"#);
    let p = caller();
    let d = decide_args(
        &s,
        "k8s.scale",
        Risk::Write,
        &p,
        &ns("dev"),
        &json!({"replicas": 3}),
    );
    assert_eq!(
        (approvals(&d), d.rule.as_str()),
        (Some(1), "test.yaml#base")
    );
    let d = decide_args(
        &s,
        "k8s.scale",
        Risk::Write,
        &p,
        &ns("dev"),
        &json!({"replicas": 30}),
    );
    assert_eq!(
        (approvals(&d), d.rule.as_str()),
        (Some(2), "test.yaml#big-scale")
    );
    let d = decide_args(
        &s,
        "k8s.scale",
        Risk::Write,
        &p,
        &ns("prod-eu"),
        &json!({"replicas": 1}),
    );
    assert_eq!(approvals(&d), Some(2));
}

#[test]
fn a_condition_that_fails_at_run_time_denies() {
    let s = set(r#"
rules:
  - {name: allow-all, effect: allow}
  - {name: needs-replicas, when: "args.replicas > 10", effect: allow}
  - {name: not-bool, tools: [odd], when: "tool", effect: allow}
"#);
    let p = caller();
    let t = Target::default();
    // `args.replicas` is absent: the error counts as deny, never as allow.
    let d = decide_args(&s, "k8s.scale", Risk::Write, &p, &t, &json!({}));
    assert_eq!(d.rule, "test.yaml#needs-replicas");
    match &d.effect {
        Effect::Deny { message } => {
            assert!(
                message
                    .starts_with("policy rule test.yaml#needs-replicas could not be evaluated: "),
                "{message}"
            );
            assert!(message.contains("replicas"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let d = decide_args(&s, "odd", Risk::Read, &p, &t, &json!({"replicas": 1}));
    assert_eq!(d.rule, "test.yaml#not-bool");
    assert!(matches!(&d.effect, Effect::Deny { message } if message.contains("not a bool")));
    // With the field present the condition is simply false.
    let d = decide_args(
        &s,
        "k8s.scale",
        Risk::Write,
        &p,
        &t,
        &json!({"replicas": 1}),
    );
    assert_eq!(d.effect, Effect::Allow);
}

#[test]
fn the_cel_input_reaches_nothing_but_its_fields() {
    // Undeclared names are refused when the file loads…
    let problems = errors(
        "rules:\n  - {name: peek, when: 'env.HOME != \"\" && tool == \"x\"', effect: allow}\n",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "test.yaml: rule `peek`: condition: line 1, column 1: `env` is not an input"
        ),
        "{}",
        problems[0]
    );
    // …and fields the input does not carry fail at run time, which denies.
    let s = set("rules:\n  - {name: token, when: 'principal.token == \"t\"', effect: allow}\n");
    let d = decide(&s, "x", Risk::Read, &caller(), &Target::default());
    assert!(matches!(d.effect, Effect::Deny { .. }), "{d:?}");
}

#[test]
fn cel_parse_errors_name_file_rule_line_and_column() {
    let problems = errors(
        "rules:\n  - {name: broken, when: 'tool == \"a\" &&', effect: allow}\n  - {name: fine, effect: allow}\n",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .starts_with("test.yaml: rule `broken`: condition: line 1, column 15: Syntax error"),
        "{}",
        problems[0]
    );
    let display = PolicyErrors {
        problems: vec!["a".into(), "b".into()],
    }
    .to_string();
    assert_eq!(display, "a\nb");
}

#[test]
fn every_problem_is_reported_at_once() {
    let problems = errors(
        r#"
rules:
  - {name: a, risk: [wirte], effect: allow}
  - {name: b, effect: {require_approval: {ttl: 30}}}
  - {name: c, effect: {require_approval: {ttl: 1y}}}
  - {name: d, effect: permit}
  - {name: d, effect: allow}
  - {effect: allow}
  - {name: e, colour: red, effect: allow}
"#,
    );
    let expected = [
        "test.yaml: rule `a`: risk: unknown variant `wirte`, expected one of `read`",
        "test.yaml: rule `b`: effect: require_approval: ttl: `30` ends without a unit",
        "test.yaml: rule `c`: effect: require_approval: ttl: `1y` has the unknown unit `y`",
        "test.yaml: rule `d`: effect: unknown effect `permit`",
        "test.yaml: rule `d`: name: another rule in this file has the same name",
        "test.yaml: rule #6: missing field `name`",
        "test.yaml: rule `e`: unknown field `colour`; expected one of name,",
    ];
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for (got, want) in problems.iter().zip(expected) {
        assert!(got.starts_with(want), "got {got:?}, want {want:?}");
    }
}

#[test]
fn yaml_syntax_errors_and_empty_sets_are_problems() {
    let problems = errors("rules: [\n");
    assert!(problems[0].starts_with("test.yaml: "), "{problems:?}");
    let problems = errors("rules: []\n");
    assert!(problems[0].contains("no rules"), "{problems:?}");
    assert!(errors("policies: []\n")[0].contains("unknown field `policies`"));
}

#[test]
fn load_dir_reads_yaml_files_in_name_order_and_names_a_bad_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let e = PolicySet::load_dir(&missing).expect_err("missing dir");
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
    let e = PolicySet::load_dir(dir.path()).expect_err("empty dir");
    assert!(e.to_string().contains("holds no *.yaml"), "{e}");

    let write =
        |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write(
        "b.yml",
        "rules:\n  - {name: b, effect: {require_approval: {approvals: 2}}}\n",
    );
    write(
        "a.yaml",
        "rules:\n  - {name: a, effect: {require_approval: {approvals: 2}}}\n",
    );
    write("notes.txt", "not a policy");
    let s = PolicySet::load_dir(dir.path()).expect("loads");
    assert_eq!(s.rule_ids().collect::<Vec<_>>(), ["a.yaml#a", "b.yml#b"]);
    assert_eq!(
        decide(&s, "x", Risk::Write, &caller(), &Target::default()).rule,
        "a.yaml#a"
    );
}

#[test]
fn reload_swaps_the_set_and_keeps_the_old_one_on_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "rules:\n  - {name: one, effect: allow}\n").expect("write");
    let handle = PolicyHandle::new(
        PolicySet::load_dir(dir.path()).expect("loads"),
        Some(dir.path().into()),
    );
    let shared = handle.clone();

    std::fs::write(
        &path,
        "rules:\n  - {name: one, effect: deny}\n  - {name: two, effect: allow}\n",
    )
    .expect("write");
    assert_eq!(handle.reload().expect("valid files"), 2);
    assert_eq!(shared.current().rule_count(), 2, "clones see the new set");

    std::fs::write(
        &path,
        "rules:\n  - {name: broken, when: 'tool ==', effect: allow}\n",
    )
    .expect("write");
    let e = handle.reload().expect_err("invalid files");
    assert!(
        e.to_string()
            .contains("policy.yaml: rule `broken`: condition: line 1"),
        "{e}"
    );
    let current = shared.current();
    assert_eq!(
        current.rule_ids().collect::<Vec<_>>(),
        ["policy.yaml#one", "policy.yaml#two"]
    );

    let fixed = PolicyHandle::new(PolicySet::builtin_default(), None);
    assert_eq!(
        fixed.reload().expect("no dir"),
        fixed.current().rule_count()
    );
}

#[test]
fn explain_names_the_decision_the_winner_and_every_match() {
    let s = PolicySet::builtin_default();
    let p = caller();
    let args = json!({"namespace": "prod-eu", "kind": "Pod", "name": "web-1"});
    let target = Target::from_args(&args);
    let text = explain(
        &s,
        &PolicyInput {
            tool: "k8s.delete_resource",
            risk: Risk::Write,
            args: &args,
            principal: &p,
            target: &target,
        },
    );
    assert!(
        text.starts_with("decision: require_approval: 2 approvals by toolgate.approver"),
        "{text}"
    );
    assert!(
        text.contains("rule:     default.yaml#delete-or-exec-in-protected-namespaces\n"),
        "{text}"
    );
    assert!(
        text.contains("* default.yaml#delete-or-exec-in-protected-namespaces: require_approval: 2"),
        "{text}"
    );
    assert!(
        text.contains("  default.yaml#write-needs-approval: require_approval: 1 approval by"),
        "{text}"
    );
    assert!(
        text.contains("default.yaml#read-for-callers: risk write is not in [read]"),
        "{text}"
    );
    assert!(
        text.contains("target:   namespace=prod-eu kind=Pod name=web-1"),
        "{text}"
    );
}

#[test]
fn unused_tool_patterns_point_at_typos() {
    let s = set("rules:\n  - {name: r, tools: [\"k8s.*\", \"k8s.delte_*\"], effect: allow}\n");
    assert_eq!(
        s.unused_tool_patterns(&["k8s.get_resource", "k8s.delete_resource"]),
        ["test.yaml#r: `k8s.delte_*`"]
    );
}

mod shipped_default {
    use super::*;

    fn default() -> PolicySet {
        match PolicySet::from_sources(&[(DEFAULT_POLICY_FILE, DEFAULT_POLICY)]) {
            Ok(set) => set,
            Err(e) => panic!("policies/default.yaml does not compile:\n{e}"),
        }
    }

    #[test]
    fn compiles_and_is_the_builtin() {
        assert_eq!(
            PolicySet::builtin_default().rule_count(),
            default().rule_count()
        );
        assert!(default().rule_count() >= 6);
    }

    #[test]
    fn reads_are_allowed_for_callers_only() {
        let s = default();
        let d = decide(
            &s,
            "k8s.get_resource",
            Risk::Read,
            &caller(),
            &ns("prod-eu"),
        );
        assert_eq!(
            (d.effect, d.rule.as_str()),
            (Effect::Allow, "default.yaml#read-for-callers")
        );
        let d = decide(
            &s,
            "approval.status",
            Risk::Read,
            &caller(),
            &Target::default(),
        );
        assert_eq!(d.effect, Effect::Allow);
        for nobody in [
            principal(&[]),
            principal(&["viewer"]),
            principal(&["toolgate.approver"]),
        ] {
            let d = decide(
                &s,
                "k8s.get_resource",
                Risk::Read,
                &nobody,
                &Target::default(),
            );
            assert_eq!(d.rule, NO_RULE, "{nobody:?}");
            assert!(matches!(d.effect, Effect::Deny { .. }));
            let d = decide(&s, "k8s.delete_resource", Risk::Write, &nobody, &ns("prod"));
            assert_eq!(d.rule, NO_RULE, "{nobody:?}");
        }
    }

    #[test]
    fn writes_need_one_approval_by_an_approver() {
        let d = decide(
            &default(),
            "k8s.rollout_restart",
            Risk::Write,
            &caller(),
            &ns("prod-eu"),
        );
        assert_eq!(d.rule, "default.yaml#write-needs-approval");
        assert_eq!(
            d.effect,
            Effect::RequireApproval(ApprovalRule {
                approvals: 1,
                approver_roles: vec!["toolgate.approver".into()],
                ttl: Duration::from_secs(3600),
                reason_required: false,
                allow_target_change: false,
            })
        );
    }

    #[test]
    fn critical_needs_two_and_sensitive_one() {
        let s = default();
        let d = decide(
            &s,
            "argocd.delete_app",
            Risk::Critical,
            &caller(),
            &Target::default(),
        );
        assert_eq!(
            (approvals(&d), d.rule.as_str()),
            (Some(2), "default.yaml#critical-needs-two-approvals")
        );
        let d = decide(
            &s,
            "secret.reveal",
            Risk::Sensitive,
            &caller(),
            &Target::default(),
        );
        assert_eq!(
            (approvals(&d), d.rule.as_str()),
            (Some(1), "default.yaml#sensitive-needs-approval")
        );
    }

    #[test]
    fn deletes_and_exec_in_protected_namespaces_need_two() {
        let s = default();
        let p = caller();
        let protected = "default.yaml#delete-or-exec-in-protected-namespaces";
        for (tool, namespace, want, rule) in [
            ("k8s.delete_resource", "prod-eu", 2, protected),
            ("k8s.delete_resource", "prod", 2, protected),
            ("k8s.delete_resource", "kube-system", 2, protected),
            ("k8s.exec_command", "kube-system", 2, protected),
            ("k8s.exec_command", "prod-us", 2, protected),
            (
                "k8s.exec_command",
                "default",
                1,
                "default.yaml#write-needs-approval",
            ),
            (
                "k8s.delete_resource",
                "staging",
                1,
                "default.yaml#write-needs-approval",
            ),
            (
                "k8s.rollout_restart",
                "prod-eu",
                1,
                "default.yaml#write-needs-approval",
            ),
        ] {
            let d = decide(&s, tool, Risk::Write, &p, &ns(namespace));
            assert_eq!(
                (approvals(&d), d.rule.as_str()),
                (Some(want), rule),
                "{tool} in {namespace}"
            );
        }
        // No namespace at all: the condition reads "" and does not error.
        let d = decide(
            &s,
            "k8s.delete_resource",
            Risk::Write,
            &p,
            &Target::default(),
        );
        assert_eq!(approvals(&d), Some(1));
        // Deleting a namespace object is critical whatever its name (policy sees the kind
        // as discovery resolved it, whatever the caller typed).
        let args = json!({"kind": "Namespace", "api_version": "v1", "name": "team-a"});
        let d = decide_args(
            &s,
            "k8s.delete_resource",
            Risk::Write,
            &p,
            &Target::from_args(&args),
            &args,
        );
        assert_eq!(
            (approvals(&d), d.rule.as_str()),
            (Some(2), "default.yaml#delete-namespace")
        );
    }
}

#[test]
fn sets_and_handles_cross_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<PolicySet>();
    shared::<PolicyHandle>();
    let handle = PolicyHandle::new(PolicySet::builtin_default(), None);
    let p = caller();
    let worker = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            let t = ns("prod-eu");
            decide(&handle.current(), "k8s.exec_command", Risk::Write, &p, &t)
        })
    };
    let d = worker.join().expect("thread");
    assert_eq!(approvals(&d), Some(2));
}

#[test]
fn the_default_policy_makes_argocd_rollbacks_critical_in_prod_like_environments_only() {
    let s = PolicySet::builtin_default();
    let env = |e: &str| Target {
        kind: Some("Application".into()),
        name: Some("web".into()),
        environment: Some(e.into()),
        ..Target::default()
    };
    let args = json!({"name": "web", "id": 3, "dry_run": false});
    let rollback = |t: &Target| {
        decide_args(
            &s,
            "argocd.rollback_application",
            Risk::Write,
            &caller(),
            t,
            &args,
        )
    };
    for prod in ["production", "prod", "prod-eu"] {
        let d = rollback(&env(prod));
        assert_eq!(approvals(&d), Some(2), "{prod}: {d:?}");
        assert_eq!(
            d.rule,
            "default.yaml#argocd-rollback-in-prod-like-environments"
        );
    }
    for other in ["staging", "dev", ""] {
        assert_eq!(approvals(&rollback(&env(other))), Some(1), "{other}");
    }
    // A sync is a write everywhere; a dry run needs nobody.
    let sync = decide_args(
        &s,
        "argocd.sync_application",
        Risk::Write,
        &caller(),
        &env("production"),
        &args,
    );
    assert_eq!(approvals(&sync), Some(1));
    let dry = decide_args(
        &s,
        "argocd.rollback_application",
        Risk::Write,
        &caller(),
        &env("production"),
        &json!({"name": "web", "id": 3, "dry_run": true}),
    );
    assert_eq!(dry.effect, Effect::Allow);
}
