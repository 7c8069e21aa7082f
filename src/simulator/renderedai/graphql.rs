//! A small GraphQL executor: the schema (parsed from the SDL in `schema.graphql` with
//! `graphql-parser`, so that validation, projection and introspection come from one source),
//! operation selection, variable coercion, validation of the selected operation, root field
//! resolution through a callback, and projection of the resolved JSON through the selection
//! set (aliases, nested objects, fragments, `__typename`).
//!
//! Messages follow graphql-core 3.2 (the engine the design doc's experiment ran), which the
//! SDK only ever shows to its caller. No message echoes a variable's value: the password of
//! `signIn` and API keys travel as variables.

use std::collections::{BTreeMap, HashMap};

use graphql_parser::query::{
    self as q, Definition, OperationDefinition, Selection, SelectionSet, TypeCondition,
};
use graphql_parser::schema::{self as s, TypeDefinition};
use serde_json::{Map, Value, json};

pub use super::error::GqlError;

/// The SDL the simulator serves.
pub const SDL: &str = include_str!("schema.graphql");

/// Documents larger than this are refused before parsing.
pub const MAX_DOCUMENT: usize = 256 * 1024;
/// Bracket nesting deeper than this is refused before parsing: the parser recurses, and a
/// hostile document must not exhaust the stack.
pub const MAX_DEPTH: usize = 48;
/// Fragment spreads followed deeper than this are refused (cycles).
const MAX_SPREADS: usize = 32;

/// A type reference: `T`, `[T]`, `T!`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeRef {
    /// A named type.
    Named(String),
    /// A list.
    List(Box<TypeRef>),
    /// Non-null.
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    fn from_ast<'a, T: q::Text<'a>>(t: &q::Type<'a, T>) -> Self {
        match t {
            q::Type::NamedType(n) => Self::Named(n.as_ref().to_string()),
            q::Type::ListType(t) => Self::List(Box::new(Self::from_ast(t))),
            q::Type::NonNullType(t) => Self::NonNull(Box::new(Self::from_ast(t))),
        }
    }

    /// The named type under the wrappers.
    pub fn base(&self) -> &str {
        match self {
            Self::Named(n) => n,
            Self::List(t) | Self::NonNull(t) => t.base(),
        }
    }

    fn nullable(&self) -> &TypeRef {
        match self {
            Self::NonNull(t) => t,
            other => other,
        }
    }
}

impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named(n) => write!(f, "{n}"),
            Self::List(t) => write!(f, "[{t}]"),
            Self::NonNull(t) => write!(f, "{t}!"),
        }
    }
}

/// What kind of type a named type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Built-in scalar.
    Scalar,
    /// Output object.
    Object,
    /// Input object.
    InputObject,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Scalar => "SCALAR",
            Self::Object => "OBJECT",
            Self::InputObject => "INPUT_OBJECT",
        }
    }
}

/// An argument or input field.
#[derive(Clone, Debug)]
pub struct InputDef {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: TypeRef,
}

/// A field of an object type.
#[derive(Clone, Debug)]
pub struct FieldDef {
    /// Name.
    pub name: String,
    /// Description from the SDL.
    pub description: Option<String>,
    /// Type.
    pub ty: TypeRef,
    /// Arguments.
    pub args: Vec<InputDef>,
}

/// A named type.
#[derive(Clone, Debug)]
pub struct TypeDef {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Description from the SDL.
    pub description: Option<String>,
    /// Fields (objects).
    pub fields: Vec<FieldDef>,
    /// Input fields (input objects).
    pub inputs: Vec<InputDef>,
}

impl TypeDef {
    fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The parsed schema.
#[derive(Clone, Debug)]
pub struct Schema {
    types: BTreeMap<String, TypeDef>,
}

const SCALARS: &[&str] = &["String", "Int", "Float", "Boolean", "ID"];

impl Schema {
    /// Parses `sdl` (object and input types; `Query` and `Mutation` are the roots).
    pub fn parse(sdl: &str) -> Result<Self, String> {
        let doc = s::parse_schema::<String>(sdl).map_err(|e| e.to_string())?;
        let mut types = BTreeMap::new();
        for name in SCALARS {
            types.insert(
                name.to_string(),
                TypeDef {
                    name: name.to_string(),
                    kind: Kind::Scalar,
                    description: None,
                    fields: vec![],
                    inputs: vec![],
                },
            );
        }
        let input = |v: &s::InputValue<'_, String>| InputDef {
            name: v.name.clone(),
            ty: TypeRef::from_ast(&v.value_type),
        };
        for def in &doc.definitions {
            let s::Definition::TypeDefinition(td) = def else {
                return Err("only type definitions are supported".into());
            };
            let t = match td {
                TypeDefinition::Object(o) => TypeDef {
                    name: o.name.clone(),
                    kind: Kind::Object,
                    description: o.description.clone(),
                    fields: o
                        .fields
                        .iter()
                        .map(|f| FieldDef {
                            name: f.name.clone(),
                            description: f.description.clone(),
                            ty: TypeRef::from_ast(&f.field_type),
                            args: f.arguments.iter().map(input).collect(),
                        })
                        .collect(),
                    inputs: vec![],
                },
                TypeDefinition::InputObject(o) => TypeDef {
                    name: o.name.clone(),
                    kind: Kind::InputObject,
                    description: o.description.clone(),
                    fields: vec![],
                    inputs: o.fields.iter().map(input).collect(),
                },
                _ => return Err("only object and input types are supported".into()),
            };
            types.insert(t.name.clone(), t);
        }
        let schema = Self { types };
        for t in schema.types.values() {
            for r in t
                .fields
                .iter()
                .map(|f| &f.ty)
                .chain(t.fields.iter().flat_map(|f| f.args.iter().map(|a| &a.ty)))
                .chain(t.inputs.iter().map(|i| &i.ty))
            {
                if !schema.types.contains_key(r.base()) {
                    return Err(format!("{}: unknown type {}", t.name, r.base()));
                }
            }
        }
        for root in ["Query", "Mutation"] {
            if schema.types.get(root).map(|t| t.kind) != Some(Kind::Object) {
                return Err(format!("no {root} type"));
            }
        }
        Ok(schema)
    }

    /// The named type.
    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name)
    }

    /// The schema without the root fields (`hide(field, None)`) and root field arguments
    /// (`hide(field, Some(arg))`) that `hide` accepts: operations a server does not serve are
    /// unknown to validation and introspection alike.
    pub fn restricted(&self, hide: impl Fn(&str, Option<&str>) -> bool) -> Schema {
        let mut out = self.clone();
        for root in ["Query", "Mutation"] {
            if let Some(t) = out.types.get_mut(root) {
                t.fields.retain(|f| !hide(&f.name, None));
                for f in &mut t.fields {
                    let name = f.name.clone();
                    f.args.retain(|a| !hide(&name, Some(&a.name)));
                }
            }
        }
        out
    }

    /// Names of every type.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }
}

/// Query or mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `query` (or a bare selection set).
    Query,
    /// `mutation`.
    Mutation,
}

impl OpKind {
    fn root(self) -> &'static str {
        match self {
            Self::Query => "Query",
            Self::Mutation => "Mutation",
        }
    }
}

/// The body of a GraphQL request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The document.
    pub query: String,
    /// `operationName`, when given.
    pub operation_name: Option<String>,
    /// `variables` (an absent or null `variables` is empty).
    pub variables: Map<String, Value>,
}

impl Request {
    /// Reads a request body (`{query, operationName?, variables?}`).
    pub fn from_json(body: &Value) -> Result<Self, GqlError> {
        let Some(obj) = body.as_object() else {
            return Err(GqlError::new("POST body sent invalid JSON."));
        };
        let query = match obj.get("query") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(GqlError::new(
                    "GraphQL operations must contain a non-empty `query`.",
                ));
            }
        };
        let operation_name = match obj.get("operationName") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(GqlError::new("`operationName` must be a string.")),
        };
        let variables = match obj.get("variables") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(GqlError::new("`variables` must be an object.")),
        };
        Ok(Self {
            query,
            operation_name,
            variables,
        })
    }
}

/// The selected operation, validated, with its variables coerced: what a resolver sees.
#[derive(Debug)]
pub struct Prepared {
    /// Query or mutation.
    pub kind: OpKind,
    /// The root fields, in order: response key, field name, arguments.
    pub fields: Vec<RootField>,
}

/// One root field to resolve.
#[derive(Debug)]
pub struct RootField {
    /// Response key (alias or name).
    pub key: String,
    /// Field name.
    pub name: String,
    /// Coerced arguments (every declared argument present, null when not given).
    pub args: Map<String, Value>,
    field: q::Field<'static, String>,
    fragments: HashMap<String, q::FragmentDefinition<'static, String>>,
}

fn too_deep(doc: &str) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in doc.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' | '(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses `req.query`, picks the operation, validates it against `schema` and coerces
/// variables and arguments.
pub fn prepare(schema: &Schema, req: &Request) -> Result<Prepared, Vec<GqlError>> {
    if req.query.len() > MAX_DOCUMENT {
        return Err(vec![GqlError::new(
            "Syntax Error: the document is too large.",
        )]);
    }
    if too_deep(&req.query) {
        return Err(vec![GqlError::new(
            "Syntax Error: the document is nested too deeply.",
        )]);
    }
    // The parser's message quotes the tokens around the error, which may be a credential
    // written inline; only its position is kept.
    let doc = q::parse_query::<String>(&req.query).map_err(|e| {
        let text = e.to_string();
        let at = text
            .lines()
            .find_map(|l| {
                l.split_once("Parse error at ")
                    .map(|(_, p)| p.trim().to_string())
            })
            .unwrap_or_default();
        vec![GqlError::new(format!(
            "Syntax Error: unexpected token at {at}."
        ))]
    })?;
    let doc = doc.into_static();
    let mut ops = Vec::new();
    let mut fragments = HashMap::new();
    for d in doc.definitions {
        match d {
            Definition::Operation(op) => ops.push(op),
            Definition::Fragment(f) => {
                fragments.insert(f.name.clone(), f);
            }
        }
    }
    let op_name = |op: &OperationDefinition<'static, String>| -> Option<String> {
        match op {
            OperationDefinition::SelectionSet(_) => None,
            OperationDefinition::Query(q) => q.name.clone(),
            OperationDefinition::Mutation(m) => m.name.clone(),
            OperationDefinition::Subscription(s) => s.name.clone(),
        }
    };
    let op = match &req.operation_name {
        Some(name) => match ops.iter().position(|o| op_name(o).as_deref() == Some(name)) {
            Some(i) => ops.swap_remove(i),
            // Lenient (design doc §6.12): anatools sends operation names that do not match
            // their document's only operation (deleteGANModel, deleteManageMap, …).
            None if ops.len() == 1 => ops.remove(0),
            None => {
                return Err(vec![GqlError::new(format!(
                    "Unknown operation named '{}'.",
                    name.chars().take(100).collect::<String>()
                ))]);
            }
        },
        None if ops.len() == 1 => ops.remove(0),
        None if ops.is_empty() => return Err(vec![GqlError::new("Must provide an operation.")]),
        None => {
            return Err(vec![GqlError::new(
                "Must provide operation name if query contains multiple operations.",
            )]);
        }
    };
    let (kind, var_defs, selection) = match op {
        OperationDefinition::SelectionSet(s) => (OpKind::Query, vec![], s),
        OperationDefinition::Query(q) => (OpKind::Query, q.variable_definitions, q.selection_set),
        OperationDefinition::Mutation(m) => {
            (OpKind::Mutation, m.variable_definitions, m.selection_set)
        }
        OperationDefinition::Subscription(s) => {
            return Err(vec![GqlError::at(
                "Schema is not configured to execute subscription operation.",
                s.position,
            )]);
        }
    };
    let vars = coerce_variables(schema, &var_defs, &req.variables)?;
    let mut errors = Vec::new();
    let v = Validator {
        schema,
        fragments: &fragments,
        vars: &vars,
    };
    let root = kind.root();
    let mut fields = Vec::new();
    for f in collect_fields(&selection, root, &fragments, &mut errors, 0) {
        let name = f.name.clone();
        let key = f.alias.clone().unwrap_or_else(|| name.clone());
        if name == "__typename" {
            fields.push(root_field(key, name, Map::new(), f, &fragments));
            continue;
        }
        if kind == OpKind::Query && (name == "__type" || name == "__schema") {
            let args = match name.as_str() {
                "__type" => {
                    let mut m = Map::new();
                    match f.arguments.iter().find(|(n, _)| n == "name") {
                        Some((_, val)) => match v.value(val) {
                            Ok(Value::String(s)) => {
                                m.insert("name".into(), json!(s));
                            }
                            Ok(_) => errors.push(GqlError::at(
                                "Argument 'name' of type 'String!' must be a string.",
                                f.position,
                            )),
                            Err(e) => errors.push(e),
                        },
                        None => errors.push(GqlError::at(
                            "Field '__type' argument 'name' of type 'String!' is required, but it was not provided.",
                            f.position,
                        )),
                    }
                    m
                }
                _ => Map::new(),
            };
            v.validate_introspection(&name, &f.selection_set, &mut errors);
            fields.push(root_field(key, name, args, f, &fragments));
            continue;
        }
        let def = schema.get(root).and_then(|t| t.field(&name));
        let Some(def) = def else {
            errors.push(GqlError::at(
                format!("Cannot query field \"{name}\" on type \"{root}\"."),
                f.position,
            ));
            continue;
        };
        let args = v.arguments(root, def, &f.arguments, f.position, &mut errors);
        v.validate_selection(&def.ty, &name, &f.selection_set, f.position, &mut errors, 0);
        fields.push(root_field(key, name, args, f, &fragments));
    }
    if errors.is_empty() {
        Ok(Prepared { kind, fields })
    } else {
        Err(errors)
    }
}

fn root_field(
    key: String,
    name: String,
    args: Map<String, Value>,
    field: q::Field<'static, String>,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
) -> RootField {
    RootField {
        key,
        name,
        args,
        field,
        fragments: fragments.clone(),
    }
}

/// The fields of `set` that apply to object type `type_name`, fragments expanded.
fn collect_fields(
    set: &SelectionSet<'static, String>,
    type_name: &str,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
    errors: &mut Vec<GqlError>,
    depth: usize,
) -> Vec<q::Field<'static, String>> {
    let mut out = Vec::new();
    if depth > MAX_SPREADS {
        errors.push(GqlError::new(
            "Fragments are nested too deeply (or form a cycle).",
        ));
        return out;
    }
    let applies = |tc: &TypeCondition<'static, String>| {
        let TypeCondition::On(t) = tc;
        t == type_name
    };
    for sel in &set.items {
        match sel {
            Selection::Field(f) => out.push(f.clone()),
            Selection::InlineFragment(i) => {
                if i.type_condition.as_ref().is_none_or(applies) {
                    out.extend(collect_fields(
                        &i.selection_set,
                        type_name,
                        fragments,
                        errors,
                        depth + 1,
                    ));
                }
            }
            Selection::FragmentSpread(s) => match fragments.get(&s.fragment_name) {
                Some(fr) => {
                    if applies(&fr.type_condition) {
                        out.extend(collect_fields(
                            &fr.selection_set,
                            type_name,
                            fragments,
                            errors,
                            depth + 1,
                        ));
                    }
                }
                None => errors.push(GqlError::at(
                    format!("Unknown fragment '{}'.", s.fragment_name),
                    s.position,
                )),
            },
        }
    }
    out
}

fn json_kind_ok(scalar: &str, v: &Value) -> bool {
    match scalar {
        "String" => v.is_string(),
        "ID" => v.is_string() || v.is_i64() || v.is_u64(),
        "Int" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "Float" => v.is_number(),
        "Boolean" => v.is_boolean(),
        _ => false,
    }
}

/// Coerces a JSON input value to `ty`: lists from single values, input objects checked field
/// by field. The message never quotes the value.
fn coerce_input(schema: &Schema, ty: &TypeRef, v: &Value, what: &str) -> Result<Value, String> {
    match ty {
        TypeRef::NonNull(inner) => {
            if v.is_null() {
                Err(format!(
                    "{what}: Expected non-nullable type '{ty}' not to be null."
                ))
            } else {
                coerce_input(schema, inner, v, what)
            }
        }
        _ if v.is_null() => Ok(Value::Null),
        TypeRef::List(inner) => match v {
            Value::Array(items) => items
                .iter()
                .map(|i| coerce_input(schema, inner, i, what))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            single => Ok(Value::Array(vec![coerce_input(
                schema, inner, single, what,
            )?])),
        },
        TypeRef::Named(n) => match schema.get(n).map(|t| t.kind) {
            Some(Kind::Scalar) => {
                if json_kind_ok(n, v) {
                    // Ints sent as IDs are strings to every resolver.
                    Ok(match (n.as_str(), v) {
                        ("ID", Value::Number(x)) => json!(x.to_string()),
                        _ => v.clone(),
                    })
                } else {
                    Err(format!("{what}: {n} cannot represent the value given."))
                }
            }
            Some(Kind::InputObject) => {
                let Some(obj) = v.as_object() else {
                    return Err(format!("{what}: Expected type '{n}' to be an object."));
                };
                let t = schema
                    .get(n)
                    .ok_or_else(|| format!("Unknown type '{n}'."))?;
                let mut out = Map::new();
                for (k, fv) in obj {
                    let Some(def) = t.inputs.iter().find(|i| &i.name == k) else {
                        return Err(format!(
                            "{what}: Field '{}' is not defined by type '{n}'.",
                            k.chars().take(64).collect::<String>()
                        ));
                    };
                    out.insert(k.clone(), coerce_input(schema, &def.ty, fv, what)?);
                }
                for def in &t.inputs {
                    if matches!(def.ty, TypeRef::NonNull(_))
                        && out.get(&def.name).is_none_or(Value::is_null)
                    {
                        return Err(format!(
                            "{what}: Field '{}' of required type '{}' was not provided.",
                            def.name, def.ty
                        ));
                    }
                }
                Ok(Value::Object(out))
            }
            _ => Err(format!("{what}: '{n}' is not an input type.")),
        },
    }
}

fn coerce_variables(
    schema: &Schema,
    defs: &[q::VariableDefinition<'static, String>],
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<GqlError>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for d in defs {
        let ty = TypeRef::from_ast(&d.var_type);
        let name = &d.name;
        match schema.get(ty.base()).map(|t| t.kind) {
            Some(Kind::Scalar | Kind::InputObject) => {}
            _ => {
                errors.push(GqlError::at(
                    format!("Variable '${name}' cannot be non-input type '{ty}'."),
                    d.position,
                ));
                continue;
            }
        }
        let value = match given.get(name.as_str()) {
            Some(v) => v.clone(),
            None => match &d.default_value {
                Some(dv) => match literal(dv, &Map::new()) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => {
                    if matches!(ty, TypeRef::NonNull(_)) {
                        errors.push(GqlError::at(
                            format!("Variable '${name}' of required type '{ty}' was not provided."),
                            d.position,
                        ));
                    } else {
                        // Declared and left out: null to every resolver (null means "unset"
                        // in this API), and known as declared to validation.
                        out.insert(name.clone(), Value::Null);
                    }
                    continue;
                }
            },
        };
        if value.is_null() && matches!(ty, TypeRef::NonNull(_)) {
            errors.push(GqlError::at(
                format!("Variable '${name}' of non-null type '{ty}' must not be null."),
                d.position,
            ));
            continue;
        }
        match coerce_input(
            schema,
            &ty,
            &value,
            &format!("Variable '${name}' got invalid value"),
        ) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => errors.push(GqlError::at(e, d.position)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// An AST value as JSON, variables substituted (an unset nullable variable is null).
fn literal(v: &q::Value<'static, String>, vars: &Map<String, Value>) -> Result<Value, GqlError> {
    Ok(match v {
        q::Value::Variable(n) => vars.get(n.as_str()).cloned().unwrap_or(Value::Null),
        q::Value::Int(n) => json!(n.as_i64().unwrap_or_default()),
        q::Value::Float(f) => json!(f),
        q::Value::String(s) => json!(s),
        q::Value::Boolean(b) => json!(b),
        q::Value::Null => Value::Null,
        q::Value::Enum(e) => json!(e),
        q::Value::List(items) => Value::Array(
            items
                .iter()
                .map(|i| literal(i, vars))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        q::Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), literal(v, vars)?);
            }
            Value::Object(out)
        }
    })
}

fn variables_in(v: &q::Value<'static, String>, out: &mut Vec<String>) {
    match v {
        q::Value::Variable(n) => out.push(n.clone()),
        q::Value::List(items) => items.iter().for_each(|i| variables_in(i, out)),
        q::Value::Object(m) => m.values().for_each(|i| variables_in(i, out)),
        _ => {}
    }
}

struct Validator<'a> {
    schema: &'a Schema,
    fragments: &'a HashMap<String, q::FragmentDefinition<'static, String>>,
    vars: &'a Map<String, Value>,
}

impl Validator<'_> {
    fn value(&self, v: &q::Value<'static, String>) -> Result<Value, GqlError> {
        literal(v, self.vars)
    }

    fn arguments(
        &self,
        parent: &str,
        def: &FieldDef,
        given: &[(String, q::Value<'static, String>)],
        pos: graphql_parser::Pos,
        errors: &mut Vec<GqlError>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, val) in given {
            let Some(arg) = def.args.iter().find(|a| &a.name == name) else {
                errors.push(GqlError::at(
                    format!(
                        "Unknown argument \"{name}\" on field \"{parent}.{}\".",
                        def.name
                    ),
                    pos,
                ));
                continue;
            };
            let mut used = Vec::new();
            variables_in(val, &mut used);
            // A variable used but not declared is a validation error; one declared but unset
            // is null.
            let undeclared: Vec<&String> = used
                .iter()
                .filter(|u| !self.vars.contains_key(u.as_str()))
                .collect();
            if !undeclared.is_empty() {
                for u in undeclared {
                    errors.push(GqlError::at(
                        format!("Variable '${u}' is not defined."),
                        pos,
                    ));
                }
                continue;
            }
            match self.value(val) {
                Ok(v) => match coerce_input(
                    self.schema,
                    &arg.ty,
                    &v,
                    &format!("Argument '{name}' has invalid value"),
                ) {
                    Ok(v) => {
                        out.insert(name.clone(), v);
                    }
                    Err(e) => errors.push(GqlError::at(e, pos)),
                },
                Err(e) => errors.push(e),
            }
        }
        for a in &def.args {
            out.entry(a.name.clone()).or_insert(Value::Null);
        }
        out
    }

    fn validate_selection(
        &self,
        ty: &TypeRef,
        name: &str,
        set: &SelectionSet<'static, String>,
        pos: graphql_parser::Pos,
        errors: &mut Vec<GqlError>,
        depth: usize,
    ) {
        let base = ty.base();
        let Some(t) = self.schema.get(base) else {
            return;
        };
        match t.kind {
            Kind::Object => {
                if set.items.is_empty() {
                    errors.push(GqlError::at(
                        format!(
                            "Field '{name}' of type '{ty}' must have a selection of subfields. Did you mean '{name} {{ ... }}'?"
                        ),
                        pos,
                    ));
                    return;
                }
                if depth > MAX_DEPTH {
                    errors.push(GqlError::at("The selection is nested too deeply.", pos));
                    return;
                }
                for f in collect_fields(set, base, self.fragments, errors, 0) {
                    if f.name == "__typename" {
                        continue;
                    }
                    let Some(def) = t.field(&f.name) else {
                        errors.push(GqlError::at(
                            format!("Cannot query field \"{}\" on type \"{base}\".", f.name),
                            f.position,
                        ));
                        continue;
                    };
                    let _ = self.arguments(base, def, &f.arguments, f.position, errors);
                    self.validate_selection(
                        &def.ty,
                        &f.name,
                        &f.selection_set,
                        f.position,
                        errors,
                        depth + 1,
                    );
                }
            }
            _ => {
                if !set.items.is_empty() {
                    errors.push(GqlError::at(
                        format!(
                            "Field '{name}' must not have a selection since type '{ty}' has no subfields."
                        ),
                        pos,
                    ));
                }
            }
        }
    }

    fn validate_introspection(
        &self,
        root: &str,
        set: &SelectionSet<'static, String>,
        errors: &mut Vec<GqlError>,
    ) {
        let ty = if root == "__type" {
            "__Type"
        } else {
            "__Schema"
        };
        validate_meta(ty, set, self.fragments, errors, 0);
    }
}

/// Fields of the introspection types and what each holds (`None`: a scalar).
fn meta_field(ty: &str, field: &str) -> Option<Option<&'static str>> {
    let f = match (ty, field) {
        ("__Schema", "types") => Some("__Type"),
        ("__Schema", "queryType" | "mutationType" | "subscriptionType") => Some("__Type"),
        ("__Schema", "directives") => Some("__Directive"),
        ("__Schema", "description") => None,
        ("__Type", "kind" | "name" | "description" | "specifiedByURL") => None,
        ("__Type", "fields" | "interfaces" | "possibleTypes" | "enumValues" | "inputFields") => {
            Some(match field {
                "fields" => "__Field",
                "inputFields" => "__InputValue",
                "enumValues" => "__EnumValue",
                _ => "__Type",
            })
        }
        ("__Type", "ofType") => Some("__Type"),
        ("__Field", "name" | "description" | "isDeprecated" | "deprecationReason") => None,
        ("__Field", "args") => Some("__InputValue"),
        ("__Field", "type") => Some("__Type"),
        ("__InputValue", "name" | "description" | "defaultValue") => None,
        ("__InputValue", "type") => Some("__Type"),
        ("__EnumValue", "name" | "description" | "isDeprecated" | "deprecationReason") => None,
        ("__Directive", "name" | "description" | "locations" | "isRepeatable") => None,
        ("__Directive", "args") => Some("__InputValue"),
        _ => return None,
    };
    Some(f)
}

fn validate_meta(
    ty: &str,
    set: &SelectionSet<'static, String>,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
    errors: &mut Vec<GqlError>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        errors.push(GqlError::new("The selection is nested too deeply."));
        return;
    }
    if set.items.is_empty() {
        errors.push(GqlError::new(format!(
            "Field of type '{ty}' must have a selection of subfields."
        )));
        return;
    }
    for f in collect_fields(set, ty, fragments, errors, 0) {
        if f.name == "__typename" {
            continue;
        }
        match meta_field(ty, &f.name) {
            None => errors.push(GqlError::at(
                format!("Cannot query field \"{}\" on type \"{ty}\".", f.name),
                f.position,
            )),
            Some(Some(inner)) => {
                validate_meta(inner, &f.selection_set, fragments, errors, depth + 1)
            }
            Some(None) => {
                if !f.selection_set.items.is_empty() {
                    errors.push(GqlError::at(
                        format!(
                            "Field '{}' must not have a selection since it is a scalar.",
                            f.name
                        ),
                        f.position,
                    ));
                }
            }
        }
    }
}

/// Projects `value` (what a resolver returned for a field of type `ty`) through `set`.
fn project(
    schema: &Schema,
    ty: &TypeRef,
    value: &Value,
    set: &SelectionSet<'static, String>,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    match ty.nullable() {
        TypeRef::List(inner) => match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| project(schema, inner, i, set, fragments))
                    .collect(),
            ),
            other => project(schema, inner, other, set, fragments),
        },
        TypeRef::Named(n) => match schema.get(n) {
            Some(t) if t.kind == Kind::Object => {
                let mut out = Map::new();
                let mut errs = Vec::new();
                for f in collect_fields(set, n, fragments, &mut errs, 0) {
                    let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
                    if f.name == "__typename" {
                        out.insert(key, json!(n));
                        continue;
                    }
                    let Some(def) = t.field(&f.name) else {
                        continue;
                    };
                    let v = value.get(&f.name).unwrap_or(&Value::Null);
                    out.insert(
                        key,
                        project(schema, &def.ty, v, &f.selection_set, fragments),
                    );
                }
                Value::Object(out)
            }
            _ => value.clone(),
        },
        TypeRef::NonNull(_) => value.clone(),
    }
}

/// Introspection: a `__Type` for a type reference, projected through `set`.
fn meta_type(
    schema: &Schema,
    r: &TypeRef,
    set: &SelectionSet<'static, String>,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
) -> Value {
    let mut out = Map::new();
    let mut errs = Vec::new();
    let named = match r {
        TypeRef::Named(n) => schema.get(n),
        _ => None,
    };
    for f in collect_fields(set, "__Type", fragments, &mut errs, 0) {
        let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
        let v = match (f.name.as_str(), r) {
            ("__typename", _) => json!("__Type"),
            ("kind", TypeRef::List(_)) => json!("LIST"),
            ("kind", TypeRef::NonNull(_)) => json!("NON_NULL"),
            ("kind", TypeRef::Named(_)) => json!(named.map(|t| t.kind.name())),
            ("name", TypeRef::Named(n)) => json!(n),
            ("description", _) => json!(named.and_then(|t| t.description.clone())),
            ("ofType", TypeRef::List(inner) | TypeRef::NonNull(inner)) => {
                meta_type(schema, inner, &f.selection_set, fragments)
            }
            ("fields", TypeRef::Named(_)) => match named {
                Some(t) if t.kind == Kind::Object => Value::Array(
                    t.fields
                        .iter()
                        .map(|fd| meta_field_json(schema, fd, &f.selection_set, fragments))
                        .collect(),
                ),
                _ => Value::Null,
            },
            ("inputFields", TypeRef::Named(_)) => match named {
                Some(t) if t.kind == Kind::InputObject => Value::Array(
                    t.inputs
                        .iter()
                        .map(|i| meta_input(schema, i, &f.selection_set, fragments))
                        .collect(),
                ),
                _ => Value::Null,
            },
            ("interfaces", TypeRef::Named(_)) => match named {
                Some(t) if t.kind == Kind::Object => json!([]),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
        out.insert(key, v);
    }
    Value::Object(out)
}

fn meta_field_json(
    schema: &Schema,
    fd: &FieldDef,
    set: &SelectionSet<'static, String>,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
) -> Value {
    let mut out = Map::new();
    let mut errs = Vec::new();
    for f in collect_fields(set, "__Field", fragments, &mut errs, 0) {
        let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
        let v = match f.name.as_str() {
            "__typename" => json!("__Field"),
            "name" => json!(fd.name),
            "description" => json!(fd.description),
            "isDeprecated" => json!(false),
            "type" => meta_type(schema, &fd.ty, &f.selection_set, fragments),
            "args" => Value::Array(
                fd.args
                    .iter()
                    .map(|a| meta_input(schema, a, &f.selection_set, fragments))
                    .collect(),
            ),
            _ => Value::Null,
        };
        out.insert(key, v);
    }
    Value::Object(out)
}

fn meta_input(
    schema: &Schema,
    i: &InputDef,
    set: &SelectionSet<'static, String>,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
) -> Value {
    let mut out = Map::new();
    let mut errs = Vec::new();
    for f in collect_fields(set, "__InputValue", fragments, &mut errs, 0) {
        let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
        let v = match f.name.as_str() {
            "__typename" => json!("__InputValue"),
            "name" => json!(i.name),
            "type" => meta_type(schema, &i.ty, &f.selection_set, fragments),
            _ => Value::Null,
        };
        out.insert(key, v);
    }
    Value::Object(out)
}

fn meta_schema(
    schema: &Schema,
    set: &SelectionSet<'static, String>,
    fragments: &HashMap<String, q::FragmentDefinition<'static, String>>,
) -> Value {
    let mut out = Map::new();
    let mut errs = Vec::new();
    for f in collect_fields(set, "__Schema", fragments, &mut errs, 0) {
        let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
        let named = |n: &str| TypeRef::Named(n.to_string());
        let v = match f.name.as_str() {
            "__typename" => json!("__Schema"),
            "queryType" => meta_type(schema, &named("Query"), &f.selection_set, fragments),
            "mutationType" => meta_type(schema, &named("Mutation"), &f.selection_set, fragments),
            "types" => Value::Array(
                schema
                    .type_names()
                    .map(|n| meta_type(schema, &named(n), &f.selection_set, fragments))
                    .collect(),
            ),
            "directives" => json!([]),
            _ => Value::Null,
        };
        out.insert(key, v);
    }
    Value::Object(out)
}

/// Executes a prepared operation: `resolve(kind, field, args)` answers each root field (an
/// error nulls that field and is reported with its path); the results are projected through
/// the selection sets. Returns the response body.
pub fn execute(
    schema: &Schema,
    prepared: Prepared,
    mut resolve: impl FnMut(OpKind, &str, &Map<String, Value>) -> Result<Value, GqlError>,
) -> Value {
    let root = prepared.kind.root();
    let mut data = Map::new();
    let mut errors = Vec::new();
    for rf in prepared.fields {
        let v = match rf.name.as_str() {
            "__typename" => json!(root),
            "__type" => match rf.args.get("name").and_then(Value::as_str) {
                Some(n) if schema.get(n).is_some() => meta_type(
                    schema,
                    &TypeRef::Named(n.to_string()),
                    &rf.field.selection_set,
                    &rf.fragments,
                ),
                _ => Value::Null,
            },
            "__schema" => meta_schema(schema, &rf.field.selection_set, &rf.fragments),
            name => match resolve(prepared.kind, name, &rf.args) {
                Ok(v) => {
                    let ty = schema
                        .get(root)
                        .and_then(|t| t.field(name))
                        .map(|d| d.ty.clone())
                        .unwrap_or(TypeRef::Named("String".into()));
                    project(schema, &ty, &v, &rf.field.selection_set, &rf.fragments)
                }
                Err(mut e) => {
                    e.path = Some(rf.key.clone());
                    e.location = Some((rf.field.position.line, rf.field.position.column));
                    errors.push(e.to_json());
                    Value::Null
                }
            },
        };
        data.insert(rf.key, v);
    }
    let mut body = Map::new();
    body.insert("data".into(), Value::Object(data));
    if !errors.is_empty() {
        body.insert("errors".into(), Value::Array(errors));
    }
    Value::Object(body)
}

/// The body for errors found before execution (`data` null).
pub fn error_body(errors: &[GqlError]) -> Value {
    json!({"data": null, "errors": errors.iter().map(GqlError::to_json).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::parse(SDL).unwrap()
    }

    fn run(query: &str, vars: Value) -> Value {
        let s = schema();
        let req = Request {
            query: query.into(),
            operation_name: None,
            variables: vars.as_object().cloned().unwrap_or_default(),
        };
        let s = s.restricted(|f, a| f == "getOrganizationLimits" || a == Some("workspaceId"));
        match prepare(&s, &req) {
            Ok(p) => execute(&s, p, |_, name, args| match name {
                "getOrganizations" => {
                    Ok(json!([{"organizationId": "o1", "name": "A", "role": "admin", "secret": 1}]))
                }
                "getAPIKeyContext" => Ok(json!({"name": args["apiKey"]})),
                _ => Err(GqlError::new("nope")),
            }),
            Err(e) => error_body(&e),
        }
    }

    #[test]
    fn the_sdl_parses_and_keeps_object_lists_nullable() {
        let s = schema();
        for name in s.type_names() {
            let t = s.get(name).unwrap();
            for f in &t.fields {
                if let TypeRef::List(inner) = &f.ty
                    && s.get(inner.base()).unwrap().kind == Kind::Object
                {
                    assert_eq!(
                        **inner,
                        TypeRef::Named(inner.base().into()),
                        "{name}.{}",
                        f.name
                    );
                }
                assert!(!matches!(f.ty, TypeRef::NonNull(_)), "{name}.{}", f.name);
            }
        }
    }

    #[test]
    fn projection_aliases_and_typename() {
        let out = run(
            "query x { orgs: getOrganizations { id: organizationId __typename role } }",
            json!({}),
        );
        assert_eq!(
            out,
            json!({"data": {"orgs": [{"id": "o1", "__typename": "Organization", "role": "admin"}]}})
        );
    }

    #[test]
    fn fragments_are_expanded() {
        let out = run(
            "query { getOrganizations { ...F ... on Organization { role } } } fragment F on Organization { name }",
            json!({}),
        );
        assert_eq!(
            out["data"]["getOrganizations"][0],
            json!({"name": "A", "role": "admin"})
        );
        let cyc = run(
            "query { getOrganizations { ...F } } fragment F on Organization { ...F }",
            json!({}),
        );
        assert!(
            cyc["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("cycle")
        );
    }

    #[test]
    fn validation_errors() {
        let out = run("{ getOrganizations { nope } }", json!({}));
        assert_eq!(
            out["errors"][0]["message"],
            "Cannot query field \"nope\" on type \"Organization\"."
        );
        assert_eq!(out["data"], Value::Null);
        let out = run(
            "{ getOrganizationLimits(organizationId: \"x\") { limit } }",
            json!({}),
        );
        assert_eq!(
            out["errors"][0]["message"],
            "Cannot query field \"getOrganizationLimits\" on type \"Query\"."
        );
        let out = run("{ getOrganizations }", json!({}));
        assert!(
            out["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("must have a selection")
        );
        let out = run("{ getMembers(workspaceId: \"w\") { name } }", json!({}));
        assert_eq!(
            out["errors"][0]["message"],
            "Unknown argument \"workspaceId\" on field \"Query.getMembers\"."
        );
        let out = run("{ getOrganizations(bad: 1) { name } }", json!({}));
        assert!(
            out["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Unknown argument \"bad\"")
        );
        let out = run("{ getOrganizations(limit: \"x\") { name } }", json!({}));
        assert!(
            out["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Int cannot represent")
        );
        let out = run("{ getOrganizations(limit: $n) { name } }", json!({}));
        assert_eq!(out["errors"][0]["message"], "Variable '$n' is not defined.");
    }

    #[test]
    fn variables() {
        let out = run(
            "query q($k: String!) { getAPIKeyContext(apiKey: $k) { name } }",
            json!({"k": null}),
        );
        assert_eq!(
            out["errors"][0]["message"],
            "Variable '$k' of non-null type 'String!' must not be null."
        );
        let out = run(
            "query q($k: String!) { getAPIKeyContext(apiKey: $k) { name } }",
            json!({}),
        );
        assert_eq!(
            out["errors"][0]["message"],
            "Variable '$k' of required type 'String!' was not provided."
        );
        let out = run(
            "query q($k: String) { getAPIKeyContext(apiKey: $k) { name } }",
            json!({"k": "v"}),
        );
        assert_eq!(out["data"]["getAPIKeyContext"]["name"], "v");
        let out = run(
            "query q($k: String) { getAPIKeyContext(apiKey: $k) { name } }",
            json!({}),
        );
        assert_eq!(out["data"]["getAPIKeyContext"]["name"], Value::Null);
        let out = run(
            "query q($k: String) { getAPIKeyContext(apiKey: $k) { name } }",
            json!({"k": 12345}),
        );
        let m = out["errors"][0]["message"].as_str().unwrap();
        assert!(m.contains("$k") && !m.contains("12345"), "{m}");
    }

    #[test]
    fn introspection_nests_of_type() {
        let out = run(
            r#"query { __type(name: "Workspace") { name kind fields { name description type { name kind ofType { name kind ofType { name } } } } } }"#,
            json!({}),
        );
        let t = &out["data"]["__type"];
        assert_eq!(t["kind"], "OBJECT");
        let tags = t["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "tags")
            .unwrap();
        assert_eq!(
            tags["type"],
            json!({"name": null, "kind": "LIST", "ofType": {"name": "String", "kind": "SCALAR", "ofType": null}})
        );
        let out = run(r#"{ __type(name: "Nope") { name } }"#, json!({}));
        assert_eq!(out["data"]["__type"], Value::Null);
        let out = run(r#"{ __type(name: "Nope") { bogus } }"#, json!({}));
        assert_eq!(
            out["errors"][0]["message"],
            "Cannot query field \"bogus\" on type \"__Type\"."
        );
    }

    #[test]
    fn hostile_documents_are_refused_without_recursion() {
        let deep = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));
        let out = run(&deep, json!({}));
        assert!(
            out["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("nested too deeply")
        );
        let out = run(
            "mutation { signIn(email: \"a\", password: \"hunter2\" ",
            json!({}),
        );
        let m = out["errors"][0]["message"].as_str().unwrap();
        assert!(
            m.starts_with("Syntax Error") && !m.contains("hunter2"),
            "{m}"
        );
    }
}
