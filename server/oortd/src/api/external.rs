//! `oort.v1.ExternalService`: registers existing gRPC, REST and tarpc services
//! as SQL functions. The catalog stores each service (its description as
//! eKuiper's JSON, and its .proto files); [`ExternalServices`] compiles it and
//! puts its functions in the engine's registry. Every write checks first,
//! then stores, then installs, under one lock, so a failed call changes nothing.

use std::sync::Arc;

use oort_engine::FunctionOrigin;
use oort_external::{Description, ExternalServices, ServiceDef};
use oort_proto::v1::external_service_server::ExternalService;
use oort_proto::v1::{
    DeleteServiceRequest, DeleteServiceResponse, GetServiceRequest, GetServiceResponse, ListServicesRequest,
    ListServicesResponse, ProtoFile, RegisterServiceRequest, RegisterServiceResponse, RegisteredService,
    ServiceDescription, UpdateServiceRequest, UpdateServiceResponse,
};
use oort_store::ServiceRecord;
use tonic::{Request, Response, Status};

use crate::error::{ApiError, ApiResult};
use crate::redact;
use crate::rules::RuleController;

/// Serves `ExternalService`.
pub struct ExternalApi {
    services: Arc<ExternalServices>,
    rules: RuleController,
    /// Serializes writers: check, store and install happen as one step.
    writes: tokio::sync::Mutex<()>,
}

/// A stored record as the service definition `ExternalServices` takes.
pub fn definition(record: &ServiceRecord) -> ApiResult<ServiceDef> {
    let description = Description::from_json(&record.description_json)?;
    Ok(ServiceDef {
        name: record.name.clone(),
        description,
        proto_files: record.proto_files.iter().map(|f| (f.name.clone(), f.content.clone())).collect(),
    })
}

/// Loads every stored service into `services` (at start-up, before rules are
/// restored). A service that no longer compiles is logged and left out.
pub fn load_all(records: &[ServiceRecord], services: &ExternalServices) -> usize {
    let mut loaded = 0;
    for record in records {
        match definition(record).and_then(|def| Ok(services.prepare(def)?)) {
            Ok(prepared) => {
                services.install(prepared);
                loaded += 1;
            }
            Err(error) => tracing::error!(service = %record.name, %error, "external service could not be loaded"),
        }
    }
    loaded
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// The description of a request: exactly one of the typed form and eKuiper's JSON.
/// The service a Register or Update request describes, checked.
fn service_def(
    name: &str,
    typed: Option<ServiceDescription>,
    json: &str,
    files: &[ProtoFile],
) -> ApiResult<ServiceDef> {
    Ok(ServiceDef {
        name: name.to_owned(),
        description: description_of(typed, json)?,
        proto_files: proto_files(files)?,
    })
}

fn description_of(typed: Option<ServiceDescription>, json: &str) -> ApiResult<Description> {
    match (typed, json.trim()) {
        (Some(_), json) if !json.is_empty() => {
            Err(ApiError::InvalidArgument("give exactly one of `description` and `description_json`, not both".into()))
        }
        (Some(typed), _) => Ok(Description::from_proto(&typed)?),
        (None, "") => Err(ApiError::InvalidArgument("`description` or `description_json` is required".into())),
        (None, json) => Ok(Description::from_json(json)?),
    }
}

fn proto_files(files: &[ProtoFile]) -> ApiResult<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(files.len());
    for f in files {
        if f.name.trim().is_empty() {
            return Err(ApiError::InvalidArgument("every proto file needs a `name`".into()));
        }
        if f.name.starts_with('/') || f.name.split('/').any(|part| part == "..") {
            return Err(ApiError::InvalidArgument(format!(
                "proto file name \"{}\" must be relative, without ..",
                f.name
            )));
        }
        if out.iter().any(|(n, _)| n == &f.name) {
            return Err(ApiError::InvalidArgument(format!("proto file \"{}\" is given twice", f.name)));
        }
        out.push((f.name.clone(), f.content.clone()));
    }
    Ok(out)
}

impl ExternalApi {
    /// The API over the services and the rules that call them.
    pub fn new(services: Arc<ExternalServices>, rules: RuleController) -> Self {
        Self { services, rules, writes: tokio::sync::Mutex::new(()) }
    }

    async fn to_proto(&self, record: ServiceRecord) -> ApiResult<RegisteredService> {
        let def = definition(&record)?;
        let functions = self.services.functions(&record.name).unwrap_or_else(|| def.description.function_names());
        let mut description = def.description.to_proto();
        for interface in description.interfaces.values_mut() {
            if let Some(options) = &mut interface.options {
                redact::redact_headers(options.headers.iter_mut());
            }
        }
        Ok(RegisteredService {
            name: record.name.clone(),
            description: Some(description),
            proto_files: record.proto_files,
            functions,
            used_by_rules: self.rules.engine().rules_calling(FunctionOrigin::External, &record.name).await,
            create_time: timestamp(record.create_time_ms),
            update_time: timestamp(record.update_time_ms),
        })
    }

    async fn register(&self, request: RegisterServiceRequest) -> ApiResult<RegisteredService> {
        let RegisterServiceRequest { name, description, description_json, proto_files: files } = request;
        let def = service_def(&name, description, &description_json, &files)?;
        let _writing = self.writes.lock().await;
        let catalog = self.rules.catalog();
        let exists = {
            let name = name.clone();
            catalog.call(move |c| Ok(c.get_service(&name).is_ok())).await?
        };
        if exists {
            return Err(oort_store::StoreError::AlreadyExists { kind: oort_store::EntityKind::Service, name }.into());
        }
        let prepared = self.services.prepare(def.clone())?;
        let now = now_ms();
        let record = ServiceRecord {
            name,
            description_json: def.description.to_json(),
            proto_files: files,
            create_time_ms: now,
            update_time_ms: now,
        };
        let stored = record.clone();
        catalog.call(move |c| c.create_service(&stored)).await?;
        self.services.install(prepared);
        self.to_proto(record).await
    }

    async fn update(&self, request: UpdateServiceRequest) -> ApiResult<RegisteredService> {
        let UpdateServiceRequest { name, description, description_json, proto_files: files } = request;
        let mut def = service_def(&name, description, &description_json, &files)?;
        let _writing = self.writes.lock().await;
        let catalog = self.rules.catalog();
        let previous = {
            let name = name.clone();
            catalog.call(move |c| c.get_service(&name)).await?
        };
        // Headers sent back as read (redacted) keep their stored values.
        let stored = definition(&previous)?;
        for (iname, interface) in &mut def.description.interfaces {
            if let Some(old) = stored.description.interfaces.get(iname) {
                redact::restore_headers(&mut interface.options.headers, &old.options.headers);
            }
        }
        let prepared = self.services.prepare(def.clone())?;
        let record = ServiceRecord {
            name,
            description_json: def.description.to_json(),
            proto_files: files,
            create_time_ms: previous.create_time_ms,
            update_time_ms: now_ms(),
        };
        let stored = record.clone();
        catalog.call(move |c| c.update_service(&stored)).await?;
        self.services.install(prepared);
        self.to_proto(record).await
    }

    async fn delete(&self, request: DeleteServiceRequest) -> ApiResult<Vec<String>> {
        let _writing = self.writes.lock().await;
        let catalog = self.rules.catalog();
        let name = request.name;
        {
            let name = name.clone();
            catalog.call(move |c| c.get_service(&name)).await?;
        }
        let users = self.rules.engine().rules_calling(FunctionOrigin::External, &name).await;
        if !users.is_empty() && !request.force {
            return Err(ApiError::FailedPrecondition(format!(
                "service '{name}' is called by running rule(s) {}; stop or delete them first, or delete with force",
                users.join(", ")
            )));
        }
        for id in &users {
            self.rules.halt(id).await;
            self.mark_stopped(id).await?;
        }
        {
            let name = name.clone();
            catalog.call(move |c| c.delete_service(&name)).await?;
        }
        self.services.remove(&name);
        Ok(users)
    }

    /// Records that a rule stopped by a forced delete should not run at the next start.
    async fn mark_stopped(&self, id: &str) -> ApiResult<()> {
        let catalog = self.rules.catalog();
        let id = id.to_owned();
        let mut rule = {
            let id = id.clone();
            catalog.call(move |c| c.get_rule(&id)).await?
        };
        rule.triggered = Some(false);
        rule.update_time = Some(super::now());
        let sources: Vec<String> = oort_sql::parse_rule_sql(&rule.sql)?.source_names().map(str::to_owned).collect();
        catalog.call(move |c| c.update_rule(&rule, &sources)).await?;
        tracing::warn!(rule = %id, "rule stopped: the external service it calls was deleted with force");
        Ok(())
    }
}

#[tonic::async_trait]
impl ExternalService for ExternalApi {
    async fn register_service(
        &self,
        request: Request<RegisterServiceRequest>,
    ) -> Result<Response<RegisterServiceResponse>, Status> {
        let service = self.register(request.into_inner()).await?;
        Ok(Response::new(RegisterServiceResponse { service: Some(service) }))
    }

    async fn get_service(&self, request: Request<GetServiceRequest>) -> Result<Response<GetServiceResponse>, Status> {
        let name = request.into_inner().name;
        let record = self.rules.catalog().call(move |c| c.get_service(&name)).await?;
        Ok(Response::new(GetServiceResponse { service: Some(self.to_proto(record).await?) }))
    }

    async fn list_services(&self, _: Request<ListServicesRequest>) -> Result<Response<ListServicesResponse>, Status> {
        let records = self.rules.catalog().call(|c| c.list_services()).await?;
        let mut services = Vec::with_capacity(records.len());
        for record in records {
            services.push(self.to_proto(record).await?);
        }
        Ok(Response::new(ListServicesResponse { services }))
    }

    async fn update_service(
        &self,
        request: Request<UpdateServiceRequest>,
    ) -> Result<Response<UpdateServiceResponse>, Status> {
        let service = self.update(request.into_inner()).await?;
        Ok(Response::new(UpdateServiceResponse { service: Some(service) }))
    }

    async fn delete_service(
        &self,
        request: Request<DeleteServiceRequest>,
    ) -> Result<Response<DeleteServiceResponse>, Status> {
        let stopped_rules = self.delete(request.into_inner()).await?;
        Ok(Response::new(DeleteServiceResponse { stopped_rules }))
    }
}
