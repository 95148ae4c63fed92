//! `oort function list`.

use oort_proto::v1::function_service_client::FunctionServiceClient;
use oort_proto::v1::{FunctionOrigin, ListFunctionsRequest};

use super::Ctx;
use crate::cli::{FunctionCommand, FunctionOriginArg};
use crate::error::Error;
use crate::output::{or_dash, print_json, print_table, table};

/// Runs one `oort function` subcommand.
pub async fn run(ctx: &Ctx, command: FunctionCommand) -> Result<(), Error> {
    match command {
        FunctionCommand::List { origin } => list(ctx, origin).await,
    }
}

fn origin_of(arg: FunctionOriginArg) -> FunctionOrigin {
    match arg {
        FunctionOriginArg::Builtin => FunctionOrigin::Builtin,
        FunctionOriginArg::Native => FunctionOrigin::Native,
        FunctionOriginArg::Portable => FunctionOrigin::Portable,
        FunctionOriginArg::External => FunctionOrigin::External,
    }
}

fn origin_word(origin: FunctionOrigin) -> &'static str {
    match origin {
        FunctionOrigin::Builtin => "builtin",
        FunctionOrigin::Native => "native",
        FunctionOrigin::Portable => "portable",
        FunctionOrigin::External => "external",
        FunctionOrigin::Unspecified => "-",
    }
}

async fn list(ctx: &Ctx, origin: Option<FunctionOriginArg>) -> Result<(), Error> {
    let origin = origin.map_or(FunctionOrigin::Unspecified, origin_of);
    let request = ListFunctionsRequest { origin: origin as i32 };
    let response = FunctionServiceClient::new(ctx.channel().await?).list_functions(request).await?.into_inner();
    if ctx.json {
        return print_json(&response);
    }
    let mut t = table(["FUNCTION", "ORIGIN", "KIND", "OWNER", "DESCRIPTION"]);
    for f in &response.functions {
        t.add_row([
            if f.signature.is_empty() { f.name.clone() } else { f.signature.clone() },
            origin_word(f.origin()).to_owned(),
            if f.aggregate { "aggregate" } else { "scalar" }.to_owned(),
            or_dash(&f.owner),
            f.description.clone(),
        ]);
    }
    print_table(&t)
}
