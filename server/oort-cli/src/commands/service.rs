//! `oort service create|update|list|describe|drop`.

use std::path::{Path, PathBuf};

use oort_proto::v1::external_service_client::ExternalServiceClient;
use oort_proto::v1::{
    DeleteServiceRequest, GetServiceRequest, ListServicesRequest, ProtoFile, RegisterServiceRequest, RegisteredService,
    ServiceProtocol, UpdateServiceRequest,
};

use super::{Ctx, read_input};
use crate::cli::{ServiceCommand, ServiceInput};
use crate::client::Conn;
use crate::error::Error;
use crate::output::{emit, indent, key_values, or_dash, print_json, print_table, render, table, timestamp};

/// Runs one `oort service` subcommand.
pub async fn run(ctx: &Ctx, command: ServiceCommand) -> Result<(), Error> {
    match command {
        ServiceCommand::Create(input) => create(ctx, read(&input)?).await,
        ServiceCommand::Update(input) => update(ctx, read(&input)?).await,
        ServiceCommand::List => list(ctx).await,
        ServiceCommand::Describe { name } => describe(ctx, name).await,
        ServiceCommand::Drop { name, force } => drop(ctx, name, force).await,
    }
}

async fn client(ctx: &Ctx) -> Result<ExternalServiceClient<Conn>, Error> {
    Ok(ExternalServiceClient::new(ctx.channel().await?))
}

struct Input {
    name: String,
    description_json: String,
    proto_files: Vec<ProtoFile>,
}

/// The name a .proto file is uploaded under: `NAME=PATH`, else PATH relative to the root, else its file name.
fn proto_name(spec: &str, root: Option<&Path>) -> Result<(String, PathBuf), Error> {
    if let Some((name, path)) = spec.split_once('=') {
        return Ok((name.to_owned(), PathBuf::from(path)));
    }
    let path = PathBuf::from(spec);
    let name = match root {
        Some(root) => path
            .strip_prefix(root)
            .map_err(|_| Error::usage(format!("{spec} is not under --proto-root {}", root.display())))?
            .to_string_lossy()
            .replace('\\', "/"),
        None => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    Ok((name, path))
}

fn read(input: &ServiceInput) -> Result<Input, Error> {
    let description_json = read_input(&input.file)?;
    serde_json::from_str::<serde_json::Value>(&description_json)
        .map_err(|e| Error::usage(format!("{} is not JSON: {e}", super::input_name(&input.file))))?;
    let mut proto_files = Vec::new();
    for spec in &input.protos {
        let (name, path) = proto_name(spec, input.proto_root.as_deref())?;
        let content = read_input(&path)?;
        proto_files.push(ProtoFile { name, content });
    }
    Ok(Input { name: input.name.clone(), description_json, proto_files })
}

async fn create(ctx: &Ctx, input: Input) -> Result<(), Error> {
    let request = RegisterServiceRequest {
        name: input.name,
        description_json: input.description_json,
        proto_files: input.proto_files,
        ..Default::default()
    };
    let response = client(ctx).await?.register_service(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let service = response.service.unwrap_or_default();
    emit(&format!("Service {} registered: {}.", service.name, service.functions.join(", ")))
}

async fn update(ctx: &Ctx, input: Input) -> Result<(), Error> {
    let request = UpdateServiceRequest {
        name: input.name,
        description_json: input.description_json,
        proto_files: input.proto_files,
        ..Default::default()
    };
    let response = client(ctx).await?.update_service(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let service = response.service.unwrap_or_default();
    emit(&format!("Service {} updated: {}.", service.name, service.functions.join(", ")))
}

fn protocol_word(protocol: i32) -> &'static str {
    match ServiceProtocol::try_from(protocol) {
        Ok(ServiceProtocol::Grpc) => "grpc",
        Ok(ServiceProtocol::Rest) => "rest",
        Ok(ServiceProtocol::Rpc) => "rpc",
        _ => "-",
    }
}

async fn list(ctx: &Ctx) -> Result<(), Error> {
    let response = client(ctx).await?.list_services(ListServicesRequest {}).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    if response.services.is_empty() {
        return emit("No services.");
    }
    let mut t = table(["NAME", "INTERFACES", "FUNCTIONS", "USED BY"]);
    for s in &response.services {
        let interfaces: Vec<String> = s
            .description
            .iter()
            .flat_map(|d| d.interfaces.iter().map(|(n, i)| format!("{n} ({})", protocol_word(i.protocol))))
            .collect();
        t.add_row([
            s.name.clone(),
            interfaces.join(", "),
            s.functions.join(", "),
            or_dash(&s.used_by_rules.join(", ")),
        ]);
    }
    print_table(&t)
}

fn describe_text(s: &RegisteredService) -> String {
    let mut text = render(&key_values(&[
        ("Name", s.name.clone()),
        ("Functions", s.functions.join(", ")),
        ("Used by", or_dash(&s.used_by_rules.join(", "))),
        ("Proto files", or_dash(&s.proto_files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "))),
        ("Created", timestamp(s.create_time.as_ref())),
        ("Updated", timestamp(s.update_time.as_ref())),
    ]));
    let mut t = table(["INTERFACE", "PROTOCOL", "ADDRESS", "SCHEMA", "FUNCTION → METHOD"]);
    for (name, i) in s.description.iter().flat_map(|d| d.interfaces.iter()) {
        let functions: Vec<String> =
            i.functions
                .iter()
                .map(|f| {
                    if f.service_name.is_empty() {
                        f.name.clone()
                    } else {
                        format!("{} → {}", f.name, f.service_name)
                    }
                })
                .collect();
        t.add_row([
            name.clone(),
            protocol_word(i.protocol).to_owned(),
            i.address.clone(),
            or_dash(&i.schema_file),
            functions.join(", "),
        ]);
    }
    text.push_str("\n\nInterfaces:\n");
    text.push_str(&indent(&render(&t)));
    text
}

async fn describe(ctx: &Ctx, name: String) -> Result<(), Error> {
    let response = client(ctx).await?.get_service(GetServiceRequest { name }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    emit(&describe_text(&response.service.unwrap_or_default()))
}

async fn drop(ctx: &Ctx, name: String, force: bool) -> Result<(), Error> {
    let response =
        client(ctx).await?.delete_service(DeleteServiceRequest { name: name.clone(), force }).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    if response.stopped_rules.is_empty() {
        emit(&format!("Service {name} deleted."))
    } else {
        emit(&format!("Service {name} deleted; rule(s) stopped: {}.", response.stopped_rules.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_names_follow_the_root_or_an_explicit_name() {
        assert_eq!(proto_name("a/b/c.proto", None).unwrap().0, "c.proto");
        assert_eq!(proto_name("proto/demo/v1/demo.proto", Some(Path::new("proto"))).unwrap().0, "demo/v1/demo.proto");
        assert_eq!(proto_name("x/y.proto=./z.proto", None).unwrap(), ("x/y.proto".into(), PathBuf::from("./z.proto")));
        assert!(proto_name("elsewhere/a.proto", Some(Path::new("proto"))).is_err());
    }
}
