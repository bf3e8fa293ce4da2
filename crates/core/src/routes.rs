//! Routes: method + path template -> action, resource and parameters.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::{ParamConfig, RouteConfig, ToolConfig};

/// The method an MCP tool call is decided under: `{method: "tools/call",
/// path: "/TOOL", params: ARGUMENTS}`. No HTTP request has it (a method is
/// an HTTP token, which cannot hold `/`), so a tool's mapping and an HTTP
/// route never answer for each other.
pub const TOOL_METHOD: &str = "tools/call";

/// The longest tool name MCP allows.
pub const MAX_TOOL_NAME: usize = 128;

/// The bound parameter a tool call's whole `arguments` object enters the
/// action digest under (beside the declared ones): a tool runs with every
/// argument it is given, so an approval is bound to all of them. No
/// declared parameter can have this name.
pub const TOOL_ARGUMENTS: &str = "@arguments";

/// The bound parameter a tool call's tool name enters the action digest
/// under: two tools mapped to the same action never share an approval.
pub const TOOL_NAME: &str = "@tool";

/// A parameter's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `{name}` segment of the path template.
    Path(String),
    /// A query-string parameter.
    Query(String),
    /// A member of the request's JSON parameters, by dotted path.
    Body(Vec<String>),
    /// A request header (lowercase name).
    Header(String),
}

/// A parameter's type in the Cedar context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// A Cedar string.
    String,
    /// A Cedar `Long` (a 64-bit integer).
    Long,
    /// A Cedar boolean.
    Bool,
    /// A Cedar set of strings: every value of a repeated query parameter
    /// or header, or a JSON array of strings.
    List,
}

/// One parameter of a route.
#[derive(Clone, Debug)]
pub struct Param {
    /// Where it is read from.
    pub source: Source,
    /// What it must be.
    pub kind: ParamType,
    /// Whether it must be present.
    pub required: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var(String),
}

/// A validated route.
#[derive(Clone, Debug)]
pub struct Route {
    /// The uppercase method.
    pub method: String,
    segments: Vec<Segment>,
    /// The Cedar action id.
    pub action: String,
    /// The resource's entity type.
    pub resource_type: String,
    resource_id: Vec<Segment>,
    /// Resource attributes: attribute -> parameter name.
    pub resource_attrs: BTreeMap<String, String>,
    /// The parameters by name.
    pub params: BTreeMap<String, Param>,
    /// The names of the parameters that enter the action digest.
    pub bind: Vec<String>,
    /// Whether path variables may contain an encoded `/`.
    encoded_slashes: bool,
    /// Whether any parameter is read from the body (fixed at load).
    reads_body: bool,
}

/// A route matched against a request, with its parameters read and typed.
#[derive(Clone, Debug)]
pub struct Matched<'r> {
    /// The route.
    pub route: &'r Route,
    /// The resource id.
    pub resource_id: String,
    /// Every present parameter, typed.
    pub params: Map<String, Value>,
}

/// What a request carries, as routes read it.
pub struct RequestView<'a> {
    /// The query string.
    pub query: &'a str,
    /// The headers, names as sent.
    pub headers: &'a [(String, String)],
    /// The parsed JSON parameters.
    pub body: Option<&'a Value>,
}

fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for part in template.split('/').skip(1) {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{{{name}}}` is not a valid parameter name"));
            }
            out.push(Segment::Var(name.to_owned()));
        } else if part.contains('{') || part.contains('}') {
            return Err(format!("segment `{part}` mixes text and a parameter"));
        } else {
            out.push(Segment::Literal(part.to_owned()));
        }
    }
    Ok(out)
}

fn parse_id_template(template: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            out.push(Segment::Literal(rest[..start].to_owned()));
        }
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
        out.push(Segment::Var(rest[start + 1..start + end].to_owned()));
        rest = &rest[start + end + 1..];
    }
    if !rest.is_empty() {
        out.push(Segment::Literal(rest.to_owned()));
    }
    Ok(out)
}

fn parse_source(from: &str) -> Result<Source, String> {
    let (kind, rest) = from.split_once('.').ok_or_else(|| {
        format!("`{from}` should be `path.NAME`, `query.NAME`, `body.NAME` or `header.NAME`")
    })?;
    if rest.is_empty() {
        return Err(format!("`{from}` names no parameter"));
    }
    Ok(match kind {
        "path" => Source::Path(rest.to_owned()),
        "query" => Source::Query(rest.to_owned()),
        "body" => Source::Body(rest.split('.').map(str::to_owned).collect()),
        "header" => Source::Header(rest.to_ascii_lowercase()),
        other => {
            return Err(format!(
                "source `{other}` is not one of `path`, `query`, `body`, `header`"
            ));
        }
    })
}

/// A tool parameter's source: `arguments.NAME` (or a dotted path into an
/// object argument).
fn parse_tool_source(from: &str) -> Result<Source, String> {
    match from.strip_prefix("arguments.") {
        Some(rest) if !rest.is_empty() && rest.split('.').all(|k| !k.is_empty()) => {
            Ok(Source::Body(rest.split('.').map(str::to_owned).collect()))
        }
        _ => Err(format!(
            "`{from}` should be `arguments.NAME`: a tool's parameters are read from its arguments"
        )),
    }
}

/// Whether `name` is a tool name MCP allows: 1 to 128 of `A-Z a-z 0-9 _ -
/// .`, and not only dots (a path segment of dots means something else).
pub fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.chars().all(|c| c == '.')
}

impl Route {
    /// Validates one `[[tools]]` entry as the route a call of the tool is
    /// decided by; every problem is returned. The resource id's template
    /// names top-level arguments, as an HTTP route's names path variables
    /// (they need not be parameters, and enter the context only if they
    /// are).
    pub fn compile_tool(cfg: &ToolConfig) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if !valid_tool_name(&cfg.name) {
            problems.push(format!(
                "tool name `{}` is not 1 to {MAX_TOOL_NAME} of `A-Z a-z 0-9 _ - .`",
                cfg.name
            ));
        }
        let mut params = BTreeMap::new();
        for (name, p) in &cfg.params {
            if name == TOOL_ARGUMENTS || name == TOOL_NAME {
                problems.push(format!(
                    "parameter `{name}` is reserved for the call's tool and whole arguments"
                ));
                continue;
            }
            let compiled = parse_tool_source(&p.from)
                .map_err(|e| format!("parameter `{name}`: {e}"))
                .and_then(|source| {
                    Ok(Param {
                        source,
                        kind: param_kind(name, &p.kind)?,
                        required: p.required,
                    })
                });
            match compiled {
                Ok(param) => {
                    params.insert(name.clone(), param);
                }
                Err(e) => problems.push(e),
            }
        }
        let resource_id = parse_id_template(&cfg.resource.id).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        });
        if resource_id.is_empty() {
            problems.push("the resource id is empty".to_owned());
        }
        for seg in &resource_id {
            if let Segment::Var(v) = seg
                && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                problems.push(format!(
                    "resource id uses `{{{v}}}`, which is not an argument name"
                ));
            }
        }
        let bind = attrs_and_bind(
            &cfg.params,
            &cfg.resource.attrs,
            cfg.bind.as_ref(),
            "tool",
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            method: TOOL_METHOD.to_owned(),
            segments: vec![Segment::Literal(cfg.name.clone())],
            action: cfg.action.clone(),
            resource_type: cfg.resource.entity_type.clone(),
            resource_id,
            resource_attrs: cfg.resource.attrs.clone(),
            reads_body: true,
            params,
            bind,
            encoded_slashes: false,
        })
    }

    /// Whether this is a tool's mapping rather than an HTTP route.
    pub fn is_tool(&self) -> bool {
        self.method == TOOL_METHOD
    }

    /// Validates one route of `greenlight.toml`; every problem is returned.
    pub fn compile(cfg: &RouteConfig) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let method = cfg.method.to_ascii_uppercase();
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
            problems.push(format!("method `{}` is not an HTTP method", cfg.method));
        }
        if !cfg.path.starts_with('/') {
            problems.push(format!("path `{}` must start with `/`", cfg.path));
        }
        let segments = parse_template(&cfg.path).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        });
        let path_vars: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Var(v) => Some(v.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();
        let resource_id = parse_id_template(&cfg.resource.id).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        });
        for seg in &resource_id {
            if let Segment::Var(v) = seg
                && !path_vars.contains(&v.as_str())
            {
                problems.push(format!(
                    "resource id uses `{{{v}}}`, which is not a parameter of path `{}`",
                    cfg.path
                ));
            }
        }
        let mut params = BTreeMap::new();
        for (name, p) in &cfg.params {
            match compile_param(name, p, &path_vars) {
                Ok(param) => {
                    params.insert(name.clone(), param);
                }
                Err(e) => problems.push(e),
            }
        }
        let bind = attrs_and_bind(
            &cfg.params,
            &cfg.resource.attrs,
            cfg.bind.as_ref(),
            "route",
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        let reads_body = params.values().any(|p| matches!(p.source, Source::Body(_)));
        Ok(Self {
            method,
            segments,
            action: cfg.action.clone(),
            resource_type: cfg.resource.entity_type.clone(),
            resource_id,
            resource_attrs: cfg.resource.attrs.clone(),
            params,
            bind,
            encoded_slashes: cfg.encoded_slashes,
            reads_body,
        })
    }

    /// Matches a method and path; returns the path variables (a variable
    /// holding an encoded `/` is kept for [`read`] to refuse).
    fn match_path(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut vars = BTreeMap::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Var(name) => {
                    let value = percent_decode(part)?;
                    if value.is_empty() {
                        return None;
                    }
                    vars.insert(name.clone(), value);
                }
            }
        }
        Some(vars)
    }
}

fn compile_param(name: &str, p: &ParamConfig, path_vars: &[&str]) -> Result<Param, String> {
    let source = parse_source(&p.from).map_err(|e| format!("parameter `{name}`: {e}"))?;
    if let Source::Path(v) = &source
        && !path_vars.contains(&v.as_str())
    {
        return Err(format!(
            "parameter `{name}` reads path variable `{v}`, which the path does not have"
        ));
    }
    let kind = param_kind(name, &p.kind)?;
    if kind == ParamType::List && matches!(source, Source::Path(_)) {
        return Err(format!(
            "parameter `{name}`: a path variable holds one value, not a `list`"
        ));
    }
    Ok(Param {
        source,
        kind,
        required: p.required,
    })
}

/// Checks that resource attributes and `bind` name parameters the `what`
/// (a route or a tool) defines; the parameters an approval binds.
fn attrs_and_bind(
    params: &BTreeMap<String, ParamConfig>,
    attrs: &BTreeMap<String, String>,
    bind: Option<&Vec<String>>,
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<String> {
    for (attr, param) in attrs {
        if !params.contains_key(param) {
            problems.push(format!(
                "resource attribute `{attr}` names parameter `{param}`, which the {what} does not define"
            ));
        }
    }
    match bind {
        Some(bind) => {
            for b in bind {
                if !params.contains_key(b) {
                    problems.push(format!(
                        "`bind` names parameter `{b}`, which the {what} does not define"
                    ));
                }
            }
            bind.clone()
        }
        None => params.keys().cloned().collect(),
    }
}

/// The literal text between two variables of an id template: what an
/// argument must not hold, or two ids could be read from one.
fn joiners(template: &[Segment]) -> impl Iterator<Item = &str> {
    template.windows(3).filter_map(|w| match w {
        [Segment::Var(_), Segment::Literal(l), Segment::Var(_)] => Some(l.as_str()),
        _ => None,
    })
}

/// A parameter's declared type.
fn param_kind(name: &str, kind: &str) -> Result<ParamType, String> {
    Ok(match kind {
        "string" => ParamType::String,
        "long" => ParamType::Long,
        "bool" => ParamType::Bool,
        "list" => ParamType::List,
        other => {
            return Err(format!(
                "parameter `{name}`: type `{other}` is not one of `string`, `long`, `bool`, `list`"
            ));
        }
    })
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result
/// is not UTF-8, so such a path matches no route.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits: `u8::from_str_radix` alone would also
            // take a sign (`%+1` read as the byte 0x01).
            let hi = char::from(*bytes.get(i + 1)?).to_digit(16)?;
            let lo = char::from(*bytes.get(i + 2)?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Every value the query gives `name`, in order (a malformed escape makes
/// a pair unreadable, and it is skipped as before).
fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(&k.replace('+', " "))?;
            if k == name {
                percent_decode(&v.replace('+', " "))
            } else {
                None
            }
        })
        .collect()
}

/// One value from `values`, or the whole list for a `list` parameter. A
/// scalar given more than once is refused: Greenlight reading the first
/// while the application reads the last would decide on one value and act
/// on another.
fn one_or_list(
    name: &str,
    p: &Param,
    values: Vec<String>,
    from: &str,
) -> Result<Option<Value>, String> {
    if p.kind == ParamType::List {
        return Ok((!values.is_empty())
            .then(|| Value::Array(values.into_iter().map(Value::String).collect())));
    }
    match values.len() {
        0 => Ok(None),
        1 => Ok(values.into_iter().next().map(Value::String)),
        n => Err(format!(
            "parameter `{name}` is given {n} times in the {from}; the route reads one (declare `type = \"list\"` for several)"
        )),
    }
}

/// A route found for a method and path, its path variables read and its
/// other parameters not yet.
pub struct Found<'r> {
    /// The route.
    pub route: &'r Route,
    vars: BTreeMap<String, String>,
}

/// The route for a method and path, its parameters unread.
pub fn find<'r>(routes: &'r [Route], method: &str, path: &str) -> Option<Found<'r>> {
    routes.iter().find_map(|r| {
        r.match_path(method, path)
            .map(|vars| Found { route: r, vars })
    })
}

impl Route {
    /// Whether any of its parameters is read from the body.
    pub fn reads_body(&self) -> bool {
        self.reads_body
    }
}

/// Reads the parameters of a route found for a request. `Err` with a
/// message when a parameter is missing or has the wrong type.
pub fn read<'r>(found: Found<'r>, req: &RequestView<'_>) -> Result<Matched<'r>, String> {
    let Found { route, vars } = found;
    if !route.encoded_slashes
        && let Some((name, _)) = vars.iter().find(|(_, v)| v.contains('/'))
    {
        return Err(format!(
            "path variable `{name}` holds an encoded `/` (%2F), which route `{} {}` does not allow",
            route.method,
            route
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => l.clone(),
                    Segment::Var(v) => format!("{{{v}}}"),
                })
                .fold(String::new(), |acc, s| acc + "/" + &s)
        ));
    }
    let mut params = Map::new();
    for (name, p) in &route.params {
        let raw: Option<Value> = match &p.source {
            Source::Path(v) => vars.get(v).cloned().map(Value::String),
            Source::Query(q) => one_or_list(name, p, query_values(req.query, q), "query")?,
            Source::Header(h) => one_or_list(
                name,
                p,
                req.headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(h))
                    .map(|(_, v)| v.clone())
                    .collect(),
                "headers",
            )?,
            Source::Body(path) => {
                let mut cur = req.body;
                for key in path {
                    cur = cur.and_then(|v| v.get(key));
                }
                cur.filter(|v| !v.is_null()).cloned()
            }
        };
        match raw {
            None if p.required => return Err(format!("parameter `{name}` is required")),
            None => {}
            Some(v) => {
                params.insert(name.clone(), coerce(name, p, v)?);
            }
        }
    }
    // A route's id reads its path variables; a tool's, its top-level
    // arguments: each a non-empty string or an integer.
    let mut resource_id = String::new();
    for seg in &route.resource_id {
        match seg {
            Segment::Literal(l) => resource_id.push_str(l),
            Segment::Var(v) if route.is_tool() => match req.body.and_then(|b| b.get(v)) {
                // Joined with the text between two of the template's
                // arguments, an argument holding that text could make one
                // id of two others.
                Some(Value::String(text))
                    if joiners(&route.resource_id).any(|j| text.contains(j)) =>
                {
                    return Err(format!(
                        "argument `{v}` holds text that joins the parts of the resource id's template `{}`",
                        route
                            .resource_id
                            .iter()
                            .map(|seg| match seg {
                                Segment::Literal(l) => l.clone(),
                                Segment::Var(v) => format!("{{{v}}}"),
                            })
                            .collect::<String>()
                    ));
                }
                Some(Value::String(text)) if !text.is_empty() => resource_id.push_str(text),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
                    resource_id.push_str(&n.to_string());
                }
                _ => {
                    return Err(format!(
                        "argument `{v}` must be a non-empty string or an integer: the resource id is made of it"
                    ));
                }
            },
            Segment::Var(v) => resource_id.push_str(vars.get(v).map(String::as_str).unwrap_or("")),
        }
    }
    Ok(Matched {
        route,
        resource_id,
        params,
    })
}

/// Converts a raw value to the parameter's type. Text from the path, query or
/// a header is parsed; a JSON body value must already have the right type.
fn coerce(name: &str, p: &Param, v: Value) -> Result<Value, String> {
    let from_text = !matches!(p.source, Source::Body(_));
    match (p.kind, v) {
        (ParamType::String, Value::String(s)) => Ok(Value::String(s)),
        (ParamType::Long, Value::Number(n)) if n.is_i64() => Ok(Value::Number(n)),
        (ParamType::Long, Value::String(s)) if from_text => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("parameter `{name}` must be an integer, got `{s}`")),
        (ParamType::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (ParamType::List, Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Value::Array(items))
        }
        (ParamType::Bool, Value::String(s)) if from_text => match s.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "parameter `{name}` must be `true` or `false`, got `{s}`"
            )),
        },
        (kind, other) => Err(format!(
            "parameter `{name}` must be {}, got `{other}`",
            match kind {
                ParamType::String => "a string",
                ParamType::Long => "an integer",
                ParamType::Bool => "a boolean",
                ParamType::List => "a list of strings",
            }
        )),
    }
}
