//! CEL conditions (`when:`): compiled once at load, evaluated against a context that holds the
//! five input variables and nothing else (no environment, no clock, no extension functions).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr};
use cel::objects::{Key, Map};
use cel::{Context, Env, IdedExpr, Program, Value};

use super::PolicyInput;

/// The only names a condition may read.
pub(crate) const INPUT_VARIABLES: [&str; 5] = ["tool", "risk", "args", "principal", "target"];

/// Type names CEL resolves as identifiers (`type(args.n) == int`); they read no data.
const TYPE_NAMES: [&str; 12] = [
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "optional_type",
];

/// A compiled `when:` expression.
#[derive(Debug)]
pub(crate) struct Condition {
    pub source: String,
    program: Program,
}

/// Where and why a condition did not compile (line and column are 1-based, in the expression).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The standard CEL library and nothing more: shared by every condition of a policy set.
pub(crate) fn environment() -> Arc<Env> {
    Arc::new(Env::stdlib())
}

impl Condition {
    /// Parse `source` and check that it reads only the input variables.
    pub fn compile(env: &Env, source: &str) -> Result<Condition, Vec<CompileError>> {
        let program = env.compile(source).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|e| CompileError {
                    line: usize::try_from(e.pos.0).unwrap_or(1).max(1),
                    column: usize::try_from(e.pos.1).unwrap_or(1).max(1),
                    message: e.msg.clone(),
                })
                .collect::<Vec<_>>()
        })?;
        let mut strangers = Vec::new();
        free_identifiers(program.expression(), &mut Vec::new(), &mut strangers);
        if !strangers.is_empty() {
            let errors = strangers
                .into_iter()
                .map(|(name, id)| {
                    let offset = program
                        .source_info()
                        .offset_for(id)
                        .map_or(0, |(start, _)| start as usize);
                    let (line, column) = line_column(source, offset);
                    CompileError {
                        line,
                        column,
                        message: format!(
                            "`{name}` is not an input; a condition can read only {}",
                            INPUT_VARIABLES.join(", ")
                        ),
                    }
                })
                .collect();
            return Err(errors);
        }
        Ok(Condition {
            source: source.to_string(),
            program,
        })
    }

    /// `Ok(true/false)`, or why the condition could not be evaluated (the caller denies).
    pub fn evaluate(&self, ctx: &Context) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the condition returned {}, not a bool",
                other.type_of()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The CEL context of one call, built on first use (most rules have no condition).
pub(crate) struct LazyInput<'i> {
    env: &'i Arc<Env>,
    input: &'i PolicyInput<'i>,
    ctx: OnceCell<Context<'static, 'static>>,
}

impl<'i> LazyInput<'i> {
    pub fn new(env: &'i Arc<Env>, input: &'i PolicyInput<'i>) -> Self {
        Self {
            env,
            input,
            ctx: OnceCell::new(),
        }
    }

    pub fn context(&self) -> &Context<'static, 'static> {
        self.ctx.get_or_init(|| input_context(self.env, self.input))
    }
}

/// The evaluation context for one call: `tool`, `risk`, `args`, `principal {sub, name, roles,
/// org}` and `target {cluster, namespace, kind, name, mount, path, environment, project}`. Absent target fields are empty strings
/// so `target.namespace.startsWith("prod")` never errors.
pub(crate) fn input_context(env: &Arc<Env>, input: &PolicyInput) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(Arc::clone(env));
    ctx.add_variable_from_value("tool", input.tool);
    ctx.add_variable_from_value("risk", input.risk.as_str());
    let args = match input.args {
        serde_json::Value::Null => Value::Map(Map {
            map: Arc::new(HashMap::new()),
        }),
        other => json_to_cel(other),
    };
    ctx.add_variable_from_value("args", args);
    let principal = input.principal;
    let roles: Vec<Value> = principal
        .roles
        .iter()
        .map(|r| Value::from(r.as_str()))
        .collect();
    let mut p: HashMap<&str, Value> = HashMap::new();
    p.insert("sub", Value::from(principal.sub.as_str()));
    p.insert("name", Value::from(principal.name.as_str()));
    p.insert("roles", Value::from(roles));
    p.insert("org", Value::from(principal.org.as_str()));
    ctx.add_variable_from_value("principal", p);
    let target = input.target;
    let text = |v: &Option<String>| Value::from(v.as_deref().unwrap_or(""));
    let mut t: HashMap<&str, Value> = HashMap::new();
    t.insert("cluster", text(&target.cluster));
    t.insert("namespace", text(&target.namespace));
    let namespaces: Vec<Value> = target
        .namespaces
        .iter()
        .map(|n| Value::from(n.as_str()))
        .collect();
    t.insert("namespaces", Value::List(Arc::new(namespaces)));
    t.insert("kind", text(&target.kind));
    t.insert("api_version", text(&target.api_version));
    t.insert("name", text(&target.name));
    t.insert("mount", text(&target.mount));
    t.insert("path", text(&target.path));
    t.insert("environment", text(&target.environment));
    t.insert("project", text(&target.project));
    ctx.add_variable_from_value("target", t);
    ctx
}

/// JSON → CEL: integers stay `int` when they fit (so `args.replicas > 3` works), maps keep
/// string keys.
fn json_to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(map) => Value::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (Key::from(k.as_str()), json_to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// Identifiers that are neither input variables, type names, nor bound by a comprehension
/// (`args.items.exists(x, …)` binds `x`), with their expression ids.
fn free_identifiers<'e>(e: &'e IdedExpr, bound: &mut Vec<&'e str>, out: &mut Vec<(&'e str, u64)>) {
    match &e.expr {
        Expr::Ident(name) => {
            let name = name.as_str();
            let known = INPUT_VARIABLES.contains(&name)
                || TYPE_NAMES.contains(&name)
                || name.starts_with('@')
                || bound.contains(&name);
            if !known && !out.iter().any(|(n, _)| *n == name) {
                out.push((name, e.id));
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                free_identifiers(target, bound, out);
            }
            for arg in &call.args {
                free_identifiers(arg, bound, out);
            }
        }
        Expr::Comprehension(comp) => {
            free_identifiers(&comp.iter_range, bound, out);
            free_identifiers(&comp.accu_init, bound, out);
            let depth = bound.len();
            bound.push(&comp.iter_var);
            if let Some(v2) = &comp.iter_var2 {
                bound.push(v2);
            }
            bound.push(&comp.accu_var);
            free_identifiers(&comp.loop_cond, bound, out);
            free_identifiers(&comp.loop_step, bound, out);
            free_identifiers(&comp.result, bound, out);
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for item in &list.elements {
                free_identifiers(item, bound, out);
            }
        }
        Expr::Map(map) => entries(&map.entries, bound, out),
        Expr::Struct(s) => entries(&s.entries, bound, out),
        Expr::Select(select) => free_identifiers(&select.operand, bound, out),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entries<'e>(
    entries: &'e [cel::common::ast::IdedEntryExpr],
    bound: &mut Vec<&'e str>,
    out: &mut Vec<(&'e str, u64)>,
) {
    for entry in entries {
        match &entry.expr {
            EntryExpr::StructField(field) => free_identifiers(&field.value, bound, out),
            EntryExpr::MapEntry(pair) => {
                free_identifiers(&pair.key, bound, out);
                free_identifiers(&pair.value, bound, out);
            }
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::principal::Principal;
    use crate::core::tool::{Risk, Target};
    use serde_json::json;

    fn eval(source: &str, args: serde_json::Value, target: Target) -> Result<bool, String> {
        let env = environment();
        let cond = Condition::compile(&env, source).map_err(|e| format!("{e:?}"))?;
        let principal = Principal::new("bob", "Bob", vec!["toolgate.caller".into()]);
        let input = PolicyInput {
            tool: "k8s.delete_resource",
            risk: Risk::Write,
            args: &args,
            principal: &principal,
            target: &target,
        };
        cond.evaluate(&input_context(&env, &input))
    }

    #[test]
    fn conditions_read_every_input_field() {
        let target = Target {
            namespace: Some("prod-eu".into()),
            ..Target::default()
        };
        let source = r#"tool == "k8s.delete_resource" && risk == "write"
            && principal.sub == "bob" && principal.name == "Bob" && "toolgate.caller" in principal.roles
            && principal.org == "" && target.namespace.startsWith("prod") && target.cluster == ""
            && args.replicas > 3 && type(args.replicas) == int && args.items.exists(x, x == "a")
            && args.name.matches("^web-")"#;
        let args = json!({"replicas": 4, "items": ["a", "b"], "name": "web-1"});
        assert_eq!(eval(source, args, target), Ok(true));
    }

    #[test]
    fn absent_target_fields_are_empty_strings() {
        let got = eval(
            r#"target.namespace == "kube-system" || target.namespace.startsWith("prod")"#,
            json!({}),
            Target::default(),
        );
        assert_eq!(got, Ok(false));
    }

    #[test]
    fn anything_outside_the_input_is_rejected_at_compile_time() {
        let env = environment();
        for source in [
            "env.HOME == 'x'",
            "tool == 'a' && secret == 1",
            "args.all(k, k == other)",
        ] {
            let errors = Condition::compile(&env, source).expect_err(source);
            assert!(errors[0].message.contains("is not an input"), "{errors:?}");
        }
        // Bound comprehension variables and type names are fine.
        assert!(Condition::compile(&env, "args.all(k, k != '' && type(k) == string)").is_ok());
    }

    #[test]
    fn fields_outside_the_input_fail_at_run_time() {
        let err = eval("principal.token == 'x'", json!({}), Target::default()).unwrap_err();
        assert!(err.contains("token"), "{err}");
        assert_eq!(
            eval("has(principal.token)", json!({}), Target::default()),
            Ok(false)
        );
    }

    #[test]
    fn a_non_bool_result_is_an_error() {
        let err = eval("tool", json!({}), Target::default()).unwrap_err();
        assert!(err.contains("not a bool"), "{err}");
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let env = environment();
        let errors = Condition::compile(&env, "tool == 'a' &&\n  risk ==").unwrap_err();
        assert_eq!((errors[0].line, errors[0].column), (2, 10));
        let errors = Condition::compile(&env, "tool == 'ü' &&\n  env == 1").unwrap_err();
        assert_eq!((errors[0].line, errors[0].column), (2, 3));
    }
}
