//! Cloudpods' RBAC policy model.
//!
//! A policy is a tree `service -> resource -> action -> [extra] -> allow|deny`, where `*`
//! matches anything at its level and the most specific match wins. Each policy has a scope
//! (system, domain or project); keystone tells services which policies a token holds in each
//! scope. To authorise a request a service asks for the highest scope whose policies allow
//! it: that scope then limits what the request may see and touch.
//!
//! ```text
//! {"compute": {"*": "allow", "servers": {"perform": {"start": "deny"}}}}
//!   compute/servers/perform/start -> deny   (3 levels matched exactly)
//!   compute/disks/list            -> allow  (1 level matched exactly)
//!   identity/users/list           -> no opinion
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Scope;

/// The actions of the policy model.
pub const ACTIONS: [&str; 6] = ["list", "get", "create", "update", "delete", "perform"];

/// One request to authorise.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub service: &'a str,
    pub resource: &'a str,
    pub action: &'a str,
    pub extra: Option<&'a str>,
}

/// A named policy body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Policy {
    pub name: String,
    pub blob: Value,
}

/// What a policy says about a request: the verdict and how many levels matched exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    allow: bool,
    specificity: u8,
}

impl Policy {
    fn judge(&self, req: &Request) -> Option<Verdict> {
        let root = self.blob.get("policy").unwrap_or(&self.blob);
        let keys = [Some(req.service), Some(req.resource), Some(req.action), req.extra];
        judge_node(root, &keys, 0, 0)
    }
}

fn judge_node(node: &Value, keys: &[Option<&str>], depth: usize, exact: u8) -> Option<Verdict> {
    match node {
        Value::String(s) => parse_verdict(s).map(|allow| Verdict { allow, specificity: exact }),
        Value::Object(map) => {
            if depth >= keys.len() {
                return None;
            }
            let key = keys[depth];
            let exact_match = key.and_then(|k| map.get(k)).and_then(|n| judge_node(n, keys, depth + 1, exact + 1));
            if exact_match.is_some() {
                return exact_match;
            }
            map.get("*").and_then(|n| judge_node(n, keys, depth + 1, exact))
        }
        _ => None,
    }
}

fn parse_verdict(s: &str) -> Option<bool> {
    match s {
        "allow" | "true" => Some(true),
        "deny" | "false" => Some(false),
        _ => None,
    }
}

/// A token's policies, by scope.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicySet {
    #[serde(default)]
    pub system: Vec<Policy>,
    #[serde(default)]
    pub domain: Vec<Policy>,
    #[serde(default)]
    pub project: Vec<Policy>,
}

impl PolicySet {
    fn scope(&self, scope: Scope) -> &[Policy] {
        match scope {
            Scope::System => &self.system,
            Scope::Domain => &self.domain,
            Scope::Project | Scope::User => &self.project,
        }
    }

    /// Whether the policies of one scope allow the request. Among matching policies the most
    /// specific verdict wins; at equal specificity a deny wins.
    pub fn allows_in(&self, scope: Scope, req: &Request) -> bool {
        let mut best: Option<Verdict> = None;
        for p in self.scope(scope) {
            if let Some(v) = p.judge(req) {
                best = Some(match best {
                    Some(b) if b.specificity > v.specificity => b,
                    Some(b) if b.specificity == v.specificity => Verdict { allow: b.allow && v.allow, ..b },
                    _ => v,
                });
            }
        }
        best.is_some_and(|v| v.allow)
    }

    /// The highest scope in which the request is allowed, if any.
    pub fn allowed_scope(&self, req: &Request) -> Option<Scope> {
        [Scope::System, Scope::Domain, Scope::Project]
            .into_iter()
            .find(|s| self.allows_in(*s, req))
            .or_else(|| default_allows(req).then_some(Scope::Project))
    }
}

/// Built-in allowances for any authenticated user: callbacks on tasks, reading usages.
fn default_allows(req: &Request) -> bool {
    (req.resource == "tasks" && req.action == "perform") || (req.resource == "usages" && req.action == "get")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req<'a>(service: &'a str, resource: &'a str, action: &'a str, extra: Option<&'a str>) -> Request<'a> {
        Request { service, resource, action, extra }
    }

    #[test]
    fn most_specific_rule_wins() {
        let p = Policy {
            name: "p".into(),
            blob: json!({"compute": {"*": "allow", "servers": {"perform": {"start": "deny"}}}}),
        };
        let set = PolicySet { project: vec![p], ..Default::default() };
        assert!(!set.allows_in(Scope::Project, &req("compute", "servers", "perform", Some("start"))));
        assert!(set.allows_in(Scope::Project, &req("compute", "servers", "perform", Some("stop"))));
        assert!(set.allows_in(Scope::Project, &req("compute", "disks", "list", None)));
        assert!(!set.allows_in(Scope::Project, &req("identity", "users", "list", None)));
        assert_eq!(set.allowed_scope(&req("compute", "disks", "list", None)), Some(Scope::Project));
        assert_eq!(set.allowed_scope(&req("identity", "users", "list", None)), None);
    }

    #[test]
    fn highest_scope_and_wildcards() {
        let admin = Policy { name: "sysadmin".into(), blob: json!({"policy": {"*": "allow"}}) };
        let viewer = Policy { name: "viewer".into(), blob: json!({"*": {"*": {"list": "allow", "get": "allow"}}}) };
        let set = PolicySet { system: vec![admin], project: vec![viewer], ..Default::default() };
        assert_eq!(set.allowed_scope(&req("identity", "users", "delete", None)), Some(Scope::System));
        let set = PolicySet { project: set.project.clone(), ..Default::default() };
        assert_eq!(set.allowed_scope(&req("identity", "users", "get", None)), Some(Scope::Project));
        assert_eq!(set.allowed_scope(&req("identity", "users", "delete", None)), None);
        assert_eq!(set.allowed_scope(&req("compute", "tasks", "perform", None)), Some(Scope::Project));
        let none = PolicySet::default();
        assert_eq!(none.allowed_scope(&req("compute", "tasks", "perform", None)), Some(Scope::Project));
    }

    #[test]
    fn deny_wins_at_equal_specificity() {
        let a = Policy { name: "a".into(), blob: json!({"identity": "allow"}) };
        let d = Policy { name: "d".into(), blob: json!({"identity": "deny"}) };
        let set = PolicySet { domain: vec![a, d], ..Default::default() };
        assert!(!set.allows_in(Scope::Domain, &req("identity", "users", "get", None)));
    }
}
