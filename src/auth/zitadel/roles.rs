//! Zitadel's role claims → role names and the org ids that granted them. Pure parsing, no I/O.

use serde_json::{Map, Value};

/// The generic claim; the project-specific one is `urn:zitadel:iam:org:project:{id}:roles`.
const GENERIC_ROLES_CLAIM: &str = "urn:zitadel:iam:org:project:roles";

/// Roles claim parsing, exposed for unit tests: (roles, org ids).
///
/// Reads `urn:zitadel:iam:org:project:{project_id}:roles`, the claim for toolgate's project.
/// Only when a token has no such claim, and only when `trust_generic` is set, it reads
/// `urn:zitadel:iam:org:project:roles` instead: that claim describes the project the token was
/// asked for, which may be another one, so it never adds to the project's own roles. Each is
/// `{"<role>": {"<orgId>": "<orgDomain>"}}` or that object wrapped in an array. Both lists are
/// de-duplicated and keep first-seen order.
pub fn roles_from_claims(
    claims: &Value,
    project_id: &str,
    trust_generic: bool,
) -> (Vec<String>, Vec<String>) {
    let mut roles = Vec::new();
    let mut orgs = Vec::new();
    let specific = format!("urn:zitadel:iam:org:project:{project_id}:roles");
    let name = if claims.get(&specific).is_some() {
        specific.as_str()
    } else if trust_generic {
        GENERIC_ROLES_CLAIM
    } else {
        return (roles, orgs);
    };
    match claims.get(name) {
        Some(Value::Object(map)) => collect(map, &mut roles, &mut orgs),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::Object(map) = item {
                    collect(map, &mut roles, &mut orgs);
                }
            }
        }
        _ => {}
    }
    (roles, orgs)
}

fn collect(map: &Map<String, Value>, roles: &mut Vec<String>, orgs: &mut Vec<String>) {
    for (role, grants) in map {
        if role.is_empty() {
            continue;
        }
        push_unique(roles, role);
        if let Value::Object(by_org) = grants {
            for org in by_org.keys().filter(|o| !o.is_empty()) {
                push_unique(orgs, org);
            }
        }
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn project_claim_object_form() {
        let claims = json!({
            "urn:zitadel:iam:org:project:p1:roles": {
                "toolgate.approver": {"111": "acme.example"},
                "toolgate.caller": {"111": "acme.example", "222": "beta.example"}
            }
        });
        let (roles, orgs) = roles_from_claims(&claims, "p1", true);
        assert_eq!(roles, vec!["toolgate.approver", "toolgate.caller"]);
        assert_eq!(orgs, vec!["111", "222"]);
    }

    #[test]
    fn generic_claim_array_form() {
        let claims = json!({
            "urn:zitadel:iam:org:project:roles": [
                {"toolgate.caller": {"333": "gamma.example"}},
                {"toolgate.approver": {"333": "gamma.example"}}
            ]
        });
        let (roles, orgs) = roles_from_claims(&claims, "p1", true);
        assert_eq!(roles, vec!["toolgate.caller", "toolgate.approver"]);
        assert_eq!(orgs, vec!["333"]);
    }

    #[test]
    fn other_projects_and_odd_shapes_give_nothing_or_roles_without_orgs() {
        let other = json!({"urn:zitadel:iam:org:project:p2:roles": {"admin": {"1": "a"}}});
        assert_eq!(roles_from_claims(&other, "p1", true), (vec![], vec![]));
        let odd = json!({
            "urn:zitadel:iam:org:project:p1:roles": {"viewer": true, "": {"9": "x"}},
            "urn:zitadel:iam:org:project:roles": "toolgate.approver"
        });
        assert_eq!(
            roles_from_claims(&odd, "p1", true),
            (vec!["viewer".to_string()], vec![])
        );
        assert_eq!(
            roles_from_claims(&json!(null), "p1", true),
            (vec![], vec![])
        );
    }

    #[test]
    fn the_projects_own_claim_wins_and_the_generic_one_counts_only_when_trusted() {
        // Another project's roles in the generic claim never add to the project's own.
        let mixed = json!({
            "urn:zitadel:iam:org:project:p1:roles": {"toolgate.caller": {"111": "acme.example"}},
            "urn:zitadel:iam:org:project:roles": {"toolgate.approver": {"111": "acme.example"}}
        });
        for trust in [false, true] {
            assert_eq!(
                roles_from_claims(&mixed, "p1", trust).0,
                vec!["toolgate.caller"],
                "trust_generic={trust}"
            );
        }
        let generic_only = json!({
            "urn:zitadel:iam:org:project:roles": {"toolgate.approver": {"111": "acme.example"}}
        });
        assert_eq!(
            roles_from_claims(&generic_only, "p1", false),
            (vec![], vec![])
        );
        assert_eq!(
            roles_from_claims(&generic_only, "p1", true).0,
            vec!["toolgate.approver"]
        );
    }
}
