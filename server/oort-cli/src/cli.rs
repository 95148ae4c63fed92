//! The command-line grammar (clap derive types) and its help texts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default address of `oortd`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:9081";

/// `oort`: manage the streams and rules of an Oort server.
#[derive(Debug, Parser)]
#[command(
    name = "oort",
    version,
    about = "Manage the streams and rules of an Oort server (oortd)",
    long_about = "Manage the streams and rules of an Oort server (oortd).\n\n\
        oort is a thin client of oortd's gRPC API. Output is human-readable by default; \
        with --json each command prints exactly the server's response as proto3 JSON \
        (one document, nothing else on stdout), for scripts.",
    after_help = "Examples:\n  \
        oort stream create 'CREATE STREAM demo (temperature FLOAT) WITH (DATASOURCE=\"demo\", TYPE=\"mqtt\")'\n  \
        oort rule create --file rule.json\n  \
        oort rule status rule1\n  \
        oort --server 10.0.0.5:9081 --json rule list",
    after_long_help = concat!(
        "Examples:\n  ",
        "oort stream create 'CREATE STREAM demo (temperature FLOAT) WITH (DATASOURCE=\"demo\", TYPE=\"mqtt\")'\n  ",
        "oort rule create --file rule.json\n  ",
        "oort rule status rule1\n  ",
        "oort --server 10.0.0.5:9081 --json rule list\n\n",
        "Exit codes:\n",
        "  0  success\n",
        "  1  the server answered with an error (NOT_FOUND, INVALID_ARGUMENT, ...)\n",
        "  2  bad usage: wrong arguments or an invalid input file (nothing was sent)\n",
        "  3  the server could not be reached",
    )
)]
pub struct Cli {
    /// Address of oortd: host:port or http://host:port.
    #[arg(long, global = true, env = "OORT_SERVER", default_value = DEFAULT_SERVER, value_name = "ADDR")]
    pub server: String,

    /// Print the server's response as proto3 JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds a call may take [default: 30; none for `rule tail` and plugin installs, which may take long]
    #[arg(long, global = true, env = "OORT_TIMEOUT", value_name = "SECONDS")]
    pub timeout: Option<u64>,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Credentials and TLS, for every command that talks to the server.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Bearer token [default: the server's generated admin token, read from <DATA_DIR>/admin.token]
    #[arg(long, global = true, env = "OORT_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The server's data directory, where it writes admin.token at its first start
    #[arg(long, global = true, env = "OORT_DATA_DIR", default_value = "data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// CA certificate (PEM) that signed the server's: connect with TLS
    #[arg(long, global = true, env = "OORT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS, with --key
    #[arg(long, global = true, env = "OORT_CLIENT_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert
    #[arg(long, global = true, env = "OORT_CLIENT_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// Top-level resources.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage streams and tables (where events come from).
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Manage rules (SQL queries and the actions their results go to).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Manage plugins, native (dynamic libraries) and portable (their own processes): functions, sources and sinks.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Check that the server serves (grpc.health.v1): prints SERVING and exits
    /// 0, or exits 1 (not serving) or 3 (unreachable). For container health checks.
    Health,
    /// Manage external services (existing gRPC/REST services as SQL functions).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// List the source and sink types and the options each takes.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Manage named connections: the brokers streams (CONF_KEY) and actions (connectionSelector) use.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Manage protobuf schemas: the .proto files FORMAT="protobuf" streams (SCHEMAID) and actions (schemaId) use.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Keyed state: values stored ahead of time that rules read with
    /// get_keyed_state(key, type, default).
    #[command(subcommand)]
    State(StateCommand),
    /// Make tokens for oort.toml (nothing is sent to the server).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the SQL functions: built-in, from plugins and from external services.
    #[command(subcommand)]
    Function(FunctionCommand),
    /// Publish events to a stream of TYPE="grpc": JSON lines (an object, or an
    /// array of objects, a line) from stdin or a file.
    #[command(after_help = "Examples:\n  \
        echo '{\"temperature\": 25, \"deviceId\": \"a\"}' | oort publish sensors\n  \
        oort publish sensors --file events.jsonl")]
    Publish {
        /// The stream.
        stream: String,
        /// Read the events from this file instead of stdin (`-`).
        #[arg(long, short, default_value = "-")]
        file: std::path::PathBuf,
    },
    /// Print the shell completion script (nothing is sent to the server).
    #[command(after_help = "Examples:\n  \
        oort completions bash > ~/.local/share/bash-completion/completions/oort\n  \
        oort completions zsh > \"${fpath[1]}/_oort\"\n  \
        oort completions fish > ~/.config/fish/completions/oort.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `oort function ...`
#[derive(Debug, Subcommand)]
pub enum FunctionCommand {
    /// List the functions with their origin and description.
    #[command(visible_alias = "ls")]
    List {
        /// Only the functions of this origin.
        #[arg(long, value_enum)]
        origin: Option<FunctionOriginArg>,
    },
}

/// Where a function comes from.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FunctionOriginArg {
    /// Built into the engine.
    Builtin,
    /// A native plugin.
    Native,
    /// A portable plugin.
    Portable,
    /// An external service.
    External,
}

/// `oort state ...`
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Set a key's value. VALUE is read as JSON (42, 2.5, true, "text",
    /// [1, 2], {"a": 1}); anything that is not JSON is a string.
    #[command(
        visible_alias = "set",
        after_help = "Examples:\n  oort state put limit 42\n  oort state put site paris\n  oort state put --string code 007"
    )]
    Put {
        /// The key.
        #[arg(id = "state_key", value_name = "KEY")]
        key: String,
        /// The value.
        value: String,
        /// Store VALUE as a string, even when it reads as JSON.
        #[arg(long)]
        string: bool,
    },
    /// Print a key's value, as JSON.
    Get {
        /// The key.
        #[arg(id = "state_key", value_name = "KEY")]
        key: String,
    },
    /// List the keys and their values, in key order.
    #[command(visible_alias = "ls")]
    List {
        /// Only the keys that start with this text.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Remove keys.
    #[command(visible_alias = "rm")]
    Delete {
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

/// `oort connector ...`
#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// List the source types (a stream's TYPE) and sink types (an action's type).
    #[command(visible_alias = "ls")]
    List {
        /// Only sources, or only sinks.
        #[arg(long, value_enum)]
        role: Option<ConnectorRoleArg>,
    },
    /// Show the options of one connector: a source's WITH keys, or a sink's action properties.
    #[command(
        visible_alias = "show",
        after_help = "Examples:\n  oort connector describe file\n  oort connector describe rest --sink"
    )]
    Describe {
        /// The type, e.g. file, mqtt, rest.
        r#type: String,
        /// The sink of that type rather than the source.
        #[arg(long)]
        sink: bool,
    },
}

/// A connector's role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectorRoleArg {
    /// What a stream reads.
    Source,
    /// Where a rule's results go.
    Sink,
}

/// `oort token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random token, and the [[tokens]] entry of oort.toml that accepts it.
    #[command(
        after_help = "Example:\n  oort token new --name ci --role editor >> /dev/null  # the token goes to stderr too"
    )]
    New {
        /// The token's name in oort.toml and in audit lines.
        #[arg(long, default_value = "admin")]
        name: String,
        /// admin, editor, viewer or publisher.
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// Print the hash (sha256:...) of a token read from stdin, for oort.toml.
    Hash,
}

/// `oort plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a plugin from a zip (manifest.json + a library, or an executable with --portable).
    #[command(after_help = "Examples:\n  \
        oort plugin install mathx --file mathx.zip   # a path on the server, in <data_dir>/uploads\n  \
        oort plugin install mathx --upload target/plugins/mathx.zip         # sent with the request\n  \
        oort plugin install mathx --url https://example.com/mathx.zip\n  \
        oort plugin install rsdemo --portable --upload target/plugins/rsdemo-portable.zip")]
    Install {
        /// Plugin name; must match the manifest.
        name: String,
        /// A portable plugin (its own process over oort.plugin.v1) rather than a native library.
        #[arg(long)]
        portable: bool,
        #[command(flatten)]
        source: ArchiveArgs,
    },
    /// Replace an installed plugin while the server runs (rules keep running).
    #[command(after_help = "Example:\n  oort plugin update mathx --upload target/plugins/mathx.zip")]
    Update {
        /// Plugin name.
        name: String,
        #[command(flatten)]
        source: ArchiveArgs,
    },
    /// List installed plugins.
    #[command(visible_alias = "ls")]
    List,
    /// Show one plugin: kind, version, ABI, symbols and the rules using it.
    #[command(visible_alias = "show")]
    Describe {
        /// Plugin name.
        name: String,
    },
    /// Unload and remove a plugin (refused while rules use it, unless --force).
    #[command(visible_alias = "delete")]
    Drop {
        /// Plugin name.
        name: String,
        /// Stop the rules that use it first.
        #[arg(long)]
        force: bool,
    },
}

/// `oort connection ...`
#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Create a named connection.
    #[command(after_help = "Examples:\n  \
        oort connection create plant --type mqtt --set server=ssl://broker.plant:8883 --set rootCaPath=certs/ca.pem\n  \
        oort connection create plant --file plant.json   # {\"type\": \"mqtt\", \"props\": {...}}, or eKuiper's {\"id\", \"typ\", \"props\"}\n\n\
        Secrets (password, ...) are better given in --file than with --set, which shows in `ps`.")]
    Create(ConnectionInput),
    /// Replace a connection's settings; running rules that use it keep the old ones until they restart.
    Update(ConnectionInput),
    /// List connections with their state.
    #[command(visible_alias = "ls")]
    List,
    /// Show one connection: its settings (secrets as ***) and state.
    #[command(visible_alias = "show")]
    Describe {
        /// Name of the connection.
        name: String,
    },
    /// Delete a connection (refused while a stream or rule refers to it).
    #[command(visible_alias = "delete")]
    Drop {
        /// Name of the connection.
        name: String,
    },
}

/// The settings of `connection create|update`.
#[derive(Debug, Args)]
pub struct ConnectionInput {
    /// Name of the connection.
    pub name: String,
    /// Its type: mqtt. Default: the file's, else mqtt.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// A property, KEY=VALUE (VALUE read as JSON when it is JSON: 1, true; else as text). Repeat.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A JSON file (`-` for stdin): {"type": "mqtt", "props": {...}}, eKuiper's {"typ", "props"}, or the props alone.
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// `oort schema ...`
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a .proto file as a schema.
    #[command(after_help = "Examples:\n  \
        oort schema create plant --file plant.proto\n  \
        then: CREATE STREAM s () WITH (TYPE=\"mqtt\", DATASOURCE=\"t\", FORMAT=\"protobuf\", SCHEMAID=\"plant.Reading\")")]
    Create(SchemaInput),
    /// Replace a schema's .proto file; running rules that use it keep the old messages until they restart.
    Update(SchemaInput),
    /// List schemas with their messages.
    #[command(visible_alias = "ls")]
    List,
    /// Show one schema: its messages and .proto text.
    #[command(visible_alias = "show")]
    Describe {
        /// Name of the schema.
        name: String,
    },
    /// Delete a schema (refused while a stream or rule uses it).
    #[command(visible_alias = "delete")]
    Drop {
        /// Name of the schema.
        name: String,
    },
}

/// The input of `schema create|update`.
#[derive(Debug, Args)]
pub struct SchemaInput {
    /// Name of the schema: letters, digits and '_' (the part of a schema id before the dot).
    pub name: String,
    /// The .proto file (`-` for stdin).
    #[arg(short, long, value_name = "PATH")]
    pub file: PathBuf,
}

/// `oort service ...`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register a service from eKuiper's JSON service description and its .proto files.
    #[command(after_help = "Examples:\n  \
        oort service create demo --file demo.json --proto demo.proto\n  \
        oort service create demo --file demo.json --proto-root proto --proto proto/demo/v1/demo.proto --proto proto/demo/v1/types.proto\n  \
        oort service create demo --file demo.json --proto demo/v1/demo.proto=./demo.proto")]
    Create(ServiceInput),
    /// Replace a service's description and .proto files while the server runs.
    Update(ServiceInput),
    /// List services, ordered by name.
    #[command(visible_alias = "ls")]
    List,
    /// Show one service: interfaces, functions and the rules that call it.
    #[command(visible_alias = "show")]
    Describe {
        /// Name of the service.
        name: String,
    },
    /// Delete a service (refused while running rules call it, unless --force).
    #[command(visible_alias = "delete")]
    Drop {
        /// Name of the service.
        name: String,
        /// Stop the rules that call it instead of refusing.
        #[arg(long)]
        force: bool,
    },
}

/// Where a plugin archive comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ArchiveArgs {
    /// A path on the server's file system, inside <data_dir>/uploads (relative paths resolve there) or file_roots.
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,
    /// A local file, sent with the request.
    #[arg(long, value_name = "PATH")]
    pub upload: Option<PathBuf>,
    /// An http(s) URL the server downloads.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

/// The description and files of `service create|update`.
#[derive(Debug, Args)]
pub struct ServiceInput {
    /// Name of the service.
    pub name: String,
    /// eKuiper's JSON service description (`-` for stdin).
    #[arg(short, long, value_name = "PATH")]
    pub file: PathBuf,
    /// A .proto file: PATH (named relative to --proto-root, else by its file name) or NAME=PATH. Repeat for imports.
    #[arg(long = "proto", value_name = "[NAME=]PATH")]
    pub protos: Vec<String>,
    /// Folder the names of --proto files are relative to (as `import` and `schemaFile` refer to them).
    #[arg(long, value_name = "DIR")]
    pub proto_root: Option<PathBuf>,
}

/// `oort stream ...`
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a stream or table from eKuiper DDL.
    #[command(
        long_about = "Create a stream or table from a `CREATE STREAM` or `CREATE TABLE` statement \
            in eKuiper's syntax. The statement comes from the argument, from --file, or from \
            stdin when the argument (or --file) is `-`.",
        after_help = "Examples:\n  \
            oort stream create 'CREATE STREAM demo (temperature FLOAT, device STRING) WITH (DATASOURCE=\"demo\", TYPE=\"mqtt\", FORMAT=\"json\")'\n  \
            oort stream create --file demo.sql\n  \
            echo 'CREATE STREAM s () WITH (TYPE=\"memory\", DATASOURCE=\"t\")' | oort stream create -"
    )]
    Create(SqlInput),
    /// Replace the definition of an existing stream or table (the name comes from the DDL).
    #[command(after_help = "Example:\n  \
        oort stream update 'CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE=\"demo\", TYPE=\"mqtt\")'")]
    Update(SqlInput),
    /// List streams and tables, ordered by name.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  oort stream list\n  oort stream list --kind table --json"
    )]
    List {
        /// Only streams or only tables.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Show one stream or table: options, fields and its DDL.
    #[command(visible_alias = "show")]
    Describe {
        /// Name of the stream or table.
        name: String,
    },
    /// Delete a stream or table (refused while a rule reads it).
    #[command(visible_alias = "delete")]
    Drop {
        /// Name of the stream or table.
        name: String,
    },
}

/// Where a DDL statement comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SqlInput {
    /// The statement, or `-` to read it from stdin.
    #[arg(value_name = "SQL")]
    pub sql: Option<String>,
    /// Read the statement from this file (`-` for stdin).
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// `--kind` of `stream list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Streams only.
    Stream,
    /// Tables only.
    Table,
}

/// `oort rule ...`
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create a rule from an eKuiper rule JSON file or from flags.
    #[command(
        long_about = "Create a rule, from eKuiper's rule JSON (--file) or from flags. \
            The rule starts at once unless --no-start is given or the file says \"triggered\": false.\n\n\
            The file is eKuiper's rule JSON: {\"id\", \"sql\", \"actions\": [{TYPE: {props}}, ...], \
            \"options\": {...}, \"triggered\"}. Unknown keys are errors. Durations in options are \
            milliseconds or strings such as \"1s\".\n\n\
            Each --action is TYPE, TYPE=PROPS_JSON, or an eKuiper action object {\"TYPE\": {...}}.",
        after_help = "Examples:\n  \
            oort rule create --file rule.json\n  \
            oort rule create rule1 --sql 'SELECT * FROM demo WHERE temperature > 30' --action log\n  \
            oort rule create rule2 --sql 'SELECT * FROM demo' \\\n      \
            --action 'mqtt={\"server\":\"tcp://127.0.0.1:1883\",\"topic\":\"out\"}' --options '{\"qos\":1}' --no-start"
    )]
    Create(RuleInput),
    /// Replace a rule's SQL, actions and options; a running rule restarts with them.
    #[command(
        long_about = "Replace a rule's definition. With --file the file replaces the whole rule. \
            With flags, what is not given (SQL, actions or options) is kept from the current rule.",
        after_help = "Examples:\n  \
            oort rule update --file rule.json\n  \
            oort rule update rule1 --sql 'SELECT * FROM demo WHERE temperature > 40'"
    )]
    Update(RuleInput),
    /// List rules with their state, ordered by id.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  oort rule list\n  oort rule list --tag line1 --tag alarm"
    )]
    List {
        /// Only the rules that have this tag (repeat: every one of them).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// Show one rule, with its actions and options as eKuiper JSON.
    #[command(visible_alias = "show")]
    Describe(RuleId),
    /// Stop and delete a rule.
    #[command(visible_alias = "delete")]
    Drop(RuleId),
    /// Start a stopped rule (it also starts again after a server restart).
    Start(RuleId),
    /// Stop a running rule (it stays stopped across server restarts).
    Stop(RuleId),
    /// Stop then start a rule, resetting its state and counters.
    Restart(RuleId),
    /// Show a rule's state and the counters of each of its operators.
    Status(RuleId),
    /// Show a rule's plan.
    Explain(RuleId),
    /// Print the results of a running rule as they come, one JSON object a line.
    #[command(
        long_about = "Print the results of a running rule as they are produced, one JSON object a \
            line, until Ctrl-C (exit code 0) or until the rule stops. With --json each line is the \
            proto3 JSON of a TailRuleResponse; without, it is the event's columns as a plain \
            JSON object. With --json, the last line of each response the server sent carries \
            `next`: give it to --from to resume after that line, with the results the rule still \
            retains.",
        after_help = "Examples:\n  oort rule tail rule1 | jq .temperature\n  oort rule tail rule1 --from 1200:0"
    )]
    Tail(TailArgs),
}

/// Arguments of `rule tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The rule id.
    pub id: String,
    /// Resume at this position, RESULT or RESULT:ROW (a `next` printed with --json), with the
    /// results the rule still retains.
    #[arg(long, value_parser = parse_tail_position)]
    pub from: Option<oort_proto::v1::TailPosition>,
}

/// `RESULT` or `RESULT:ROW`.
fn parse_tail_position(text: &str) -> Result<oort_proto::v1::TailPosition, String> {
    let (result, row) = text.split_once(':').unwrap_or((text, "0"));
    let bad = |_| format!("expected RESULT or RESULT:ROW (numbers), not {text:?}");
    Ok(oort_proto::v1::TailPosition { result: result.parse().map_err(bad)?, row: row.parse().map_err(bad)? })
}

/// A rule id argument.
#[derive(Debug, Args)]
pub struct RuleId {
    /// The rule id.
    pub id: String,
}

/// The definition of a rule, from a file or from flags.
#[derive(Debug, Args)]
pub struct RuleInput {
    /// Rule id (letters, digits, `_`, `-`, `.`). With --file, optional: it
    /// fills in a missing "id" and must match one that is there.
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// eKuiper rule JSON file (`-` for stdin).
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// The rule's SELECT statement.
    #[arg(long, value_name = "SQL", conflicts_with = "file")]
    pub sql: Option<String>,

    /// An action (sink): TYPE, TYPE=PROPS_JSON or {"TYPE": PROPS_JSON}. Repeatable.
    #[arg(long = "action", value_name = "ACTION", conflicts_with = "file")]
    pub actions: Vec<String>,

    /// Rule options as eKuiper JSON, e.g. '{"qos":1,"bufferLength":2048}'.
    #[arg(long, value_name = "JSON", conflicts_with = "file")]
    pub options: Option<String>,

    /// Do not run the rule (stores it with triggered=false).
    #[arg(long)]
    pub no_start: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("oort").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&["stream", "list", "--json", "--server", "h:1"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.server, "h:1");
    }

    #[test]
    fn stream_create_needs_exactly_one_source() {
        assert_eq!(parse(&["stream", "create"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["stream", "create", "X", "--file", "f"]).unwrap_err().kind(), ErrorKind::ArgumentConflict);
        assert!(parse(&["stream", "create", "-"]).is_ok());
    }

    #[test]
    fn stream_list_kind_is_checked() {
        let cli = parse(&["stream", "list", "--kind", "table"]).unwrap();
        assert!(matches!(cli.command, Command::Stream(StreamCommand::List { kind: Some(KindArg::Table) })));
        assert_eq!(parse(&["stream", "list", "--kind", "x"]).unwrap_err().kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn rule_create_flags_parse() {
        let cli = parse(&[
            "rule",
            "create",
            "r1",
            "--sql",
            "SELECT 1",
            "--action",
            "log",
            "--action",
            "memory",
            "--no-start",
        ])
        .unwrap();
        let Command::Rule(RuleCommand::Create(input)) = cli.command else { panic!("not rule create") };
        assert_eq!(input.id.as_deref(), Some("r1"));
        assert_eq!(input.actions, ["log", "memory"]);
        assert!(input.no_start);
    }

    #[test]
    fn rule_file_conflicts_with_definition_flags() {
        let err = parse(&["rule", "create", "--file", "r.json", "--sql", "x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn rule_status_needs_an_id() {
        assert_eq!(parse(&["rule", "status"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
    }
}
