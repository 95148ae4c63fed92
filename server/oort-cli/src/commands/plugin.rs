//! `oort plugin install|update|list|describe|drop`.

use oort_proto::v1::plugin_service_client::PluginServiceClient;
use oort_proto::v1::{
    DeletePluginRequest, GetPluginRequest, InstallPluginRequest, ListPluginsRequest, Plugin, PluginKind, SymbolKind,
    UpdatePluginRequest, install_plugin_request, update_plugin_request,
};

use super::Ctx;
use crate::cli::{ArchiveArgs, PluginCommand};
use crate::client::Conn;
use crate::error::Error;
use crate::output::{emit, key_values, or_dash, print_json, print_table, table, with_progress};

/// Runs one `oort plugin` subcommand.
pub async fn run(ctx: &Ctx, command: PluginCommand) -> Result<(), Error> {
    match command {
        PluginCommand::Install { name, portable, source } => install(ctx, name, portable, source).await,
        PluginCommand::Update { name, source } => update(ctx, name, source).await,
        PluginCommand::List => list(ctx).await,
        PluginCommand::Describe { name } => describe(ctx, name).await,
        PluginCommand::Drop { name, force } => drop_plugin(ctx, name, force).await,
    }
}

async fn client(ctx: &Ctx) -> Result<PluginServiceClient<Conn>, Error> {
    Ok(PluginServiceClient::new(ctx.channel().await?))
}

/// The archive source, read locally for `--upload` (before any network call).
enum Archive {
    File(String),
    Bytes(Vec<u8>),
    Url(String),
}

fn archive(args: ArchiveArgs) -> Result<Archive, Error> {
    match (args.file, args.upload, args.url) {
        (Some(file), _, _) => Ok(Archive::File(file)),
        (_, Some(path), _) => std::fs::read(&path)
            .map(Archive::Bytes)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display()))),
        (_, _, Some(url)) => Ok(Archive::Url(url)),
        _ => Err(Error::usage("give the archive with --file, --upload or --url")),
    }
}

async fn install(ctx: &Ctx, name: String, portable: bool, source: ArchiveArgs) -> Result<(), Error> {
    let source = match archive(source)? {
        Archive::File(f) => install_plugin_request::Source::File(f),
        Archive::Bytes(b) => install_plugin_request::Source::Archive(b),
        Archive::Url(u) => install_plugin_request::Source::Url(u),
    };
    let kind = if portable { PluginKind::Portable } else { PluginKind::Native };
    let label = format!("installing {name}");
    let request = InstallPluginRequest { kind: kind as i32, name, source: Some(source) };
    let mut client = PluginServiceClient::new(ctx.long_channel().await?);
    let response = with_progress(&label, client.install_plugin(request)).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let plugin = response.plugin.unwrap_or_default();
    emit(&format!(
        "Plugin {} {} installed: {}.{}",
        plugin.name,
        plugin.version,
        symbols(&plugin),
        dependencies(&plugin)
    ))
}

/// `\nIts environment holds ...` for a Python plugin with requirements; else empty.
fn dependencies(plugin: &Plugin) -> String {
    if plugin.dependencies.is_empty() {
        return String::new();
    }
    format!("\nIts Python environment holds {}.", plugin.dependencies.join(", "))
}

async fn update(ctx: &Ctx, name: String, source: ArchiveArgs) -> Result<(), Error> {
    let source = match archive(source)? {
        Archive::File(f) => update_plugin_request::Source::File(f),
        Archive::Bytes(b) => update_plugin_request::Source::Archive(b),
        Archive::Url(u) => update_plugin_request::Source::Url(u),
    };
    let label = format!("updating {name}");
    let request = UpdatePluginRequest { name, source: Some(source) };
    let mut client = PluginServiceClient::new(ctx.long_channel().await?);
    let response = with_progress(&label, client.update_plugin(request)).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let plugin = response.plugin.unwrap_or_default();
    emit(&format!("Plugin {} updated to {}.{}", plugin.name, plugin.version, dependencies(&plugin)))
}

fn kind_word(kind: i32) -> &'static str {
    match PluginKind::try_from(kind) {
        Ok(PluginKind::Native) => "native",
        Ok(PluginKind::Portable) => "portable",
        _ => "-",
    }
}

fn symbols(plugin: &Plugin) -> String {
    let list: Vec<String> = plugin
        .symbols
        .iter()
        .map(|s| {
            let kind = match SymbolKind::try_from(s.kind) {
                Ok(SymbolKind::Source) => "source",
                Ok(SymbolKind::Sink) => "sink",
                Ok(SymbolKind::Function) if s.aggregate => "aggregate",
                Ok(SymbolKind::Function) => "function",
                _ => "?",
            };
            format!("{} ({kind})", s.name)
        })
        .collect();
    if list.is_empty() { "-".to_owned() } else { list.join(", ") }
}

async fn list(ctx: &Ctx) -> Result<(), Error> {
    let response = client(ctx).await?.list_plugins(ListPluginsRequest::default()).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    if response.plugins.is_empty() {
        return emit("No plugins.");
    }
    let mut out = table(["NAME", "KIND", "VERSION", "STATE", "RESTARTS", "SYMBOLS", "USED BY"]);
    for p in &response.plugins {
        out.add_row(vec![
            p.name.clone(),
            kind_word(p.kind).to_owned(),
            p.version.clone(),
            state(p),
            if is_portable(p) { p.restart_count.to_string() } else { "-".to_owned() },
            symbols(p),
            or_dash(&p.used_by_rules.join(", ")),
        ]);
    }
    print_table(&out)
}

fn is_portable(plugin: &Plugin) -> bool {
    plugin.kind == PluginKind::Portable as i32
}

/// A native plugin is loaded; a portable one's process runs (with its pid) or not.
fn state(plugin: &Plugin) -> String {
    match (is_portable(plugin), plugin.running) {
        (false, _) => "loaded".to_owned(),
        (true, true) => format!("running (pid {})", plugin.pid),
        (true, false) => "stopped".to_owned(),
    }
}

async fn describe(ctx: &Ctx, name: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_plugin(GetPluginRequest { name }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let p = response.plugin.unwrap_or_default();
    let mut rows = vec![
        ("name", p.name.clone()),
        ("kind", kind_word(p.kind).to_owned()),
        ("version", p.version.clone()),
        (if is_portable(&p) { "protocol" } else { "abi" }, p.abi_version.clone()),
        ("symbols", symbols(&p)),
        ("used by rules", or_dash(&p.used_by_rules.join(", "))),
        ("state", state(&p)),
    ];
    if is_portable(&p) {
        rows.push(("language", p.language.clone()));
        rows.push(("restarts", p.restart_count.to_string()));
        rows.push(("dependencies", or_dash(&p.dependencies.join(", "))));
    }
    rows.push(("last error", or_dash(&p.last_error)));
    print_table(&key_values(&rows))
}

async fn drop_plugin(ctx: &Ctx, name: String, force: bool) -> Result<(), Error> {
    let request = DeletePluginRequest { name: name.clone(), force };
    let response = client(ctx).await?.delete_plugin(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    if response.stopped_rules.is_empty() {
        emit(&format!("Plugin {name} deleted."))
    } else {
        emit(&format!("Plugin {name} deleted; stopped rule(s) {}.", response.stopped_rules.join(", ")))
    }
}
