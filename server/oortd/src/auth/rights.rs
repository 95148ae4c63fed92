//! Roles, the rights they hold, and the right each RPC needs.
//!
//! The table is closed: a method it does not name needs [`Right::Admin`], so a
//! new RPC is admin-only until someone decides otherwise (a test checks that
//! every method of `oort.v1` is named).

use std::fmt;
use std::str::FromStr;

/// What a call needs. Named in `PERMISSION_DENIED` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Get/List/status/explain/tail of anything, functions, reflection.
    Read,
    /// Create, change, start, stop and delete streams, tables and rules; set keyed state.
    Edit,
    /// Send events with `EventService.Publish`.
    Publish,
    /// Install code or name network targets: plugins, external services, connections.
    Extend,
    /// Anything the table does not name.
    Admin,
}

impl Right {
    /// The name used in messages and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Edit => "edit",
            Right::Publish => "publish",
            Right::Extend => "extend",
            Right::Admin => "admin",
        }
    }

    /// Whether a call needing this right changes something (and is audited).
    pub fn mutates(self) -> bool {
        !matches!(self, Right::Read)
    }
}

/// A caller's role, from its token or certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Streams, tables, rules and publishing; reads everything. Not plugins
    /// nor external services: those run code or reach the network.
    Editor,
    /// Reads, status, explain and TailRule.
    Viewer,
    /// `EventService.Publish` only.
    Publisher,
}

impl Role {
    /// The name in `oort.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Publisher => "publisher",
        }
    }

    /// Whether this role holds `right`.
    pub fn allows(self, right: Right) -> bool {
        match self {
            Role::Admin => true,
            Role::Editor => matches!(right, Right::Read | Right::Edit | Right::Publish),
            Role::Viewer => right == Right::Read,
            Role::Publisher => right == Right::Publish,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "admin" => Ok(Role::Admin),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            "publisher" => Ok(Role::Publisher),
            other => Err(format!("unknown role {other:?}; the roles are admin, editor, viewer and publisher")),
        }
    }
}

/// Reflection only describes the API (which is public); every authenticated
/// caller may use it, so that grpcurl works with any token.
const REFLECTION: [&str; 2] = ["/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

/// The right that the method at `path` (`/package.Service/Method`) needs.
pub fn required(path: &str) -> Option<Right> {
    if REFLECTION.iter().any(|prefix| path.starts_with(prefix)) {
        return Some(Right::Read);
    }
    let (service, method) = path.strip_prefix("/oort.v1.")?.split_once('/')?;
    let right = match (service, method) {
        ("StreamService", "GetStream" | "ListStreams")
        | ("RuleService", "GetRule" | "ListRules" | "GetRuleStatus" | "TailRule" | "ExplainRule")
        | ("PluginService", "GetPlugin" | "ListPlugins")
        | ("ExternalService", "GetService" | "ListServices")
        | ("FunctionService", "ListFunctions")
        | ("ConnectorService", "ListConnectors")
        | ("StateService", "GetKeyedState" | "ListKeyedState")
        | ("ConnectionService", "GetConnection" | "ListConnections")
        | ("SchemaService", "GetSchema" | "ListSchemas") => Right::Read,
        ("StreamService", "CreateStream" | "UpdateStream" | "DeleteStream")
        | ("RuleService", "CreateRule" | "UpdateRule" | "DeleteRule" | "StartRule" | "StopRule" | "RestartRule")
        | ("StateService", "PutKeyedState" | "DeleteKeyedState")
        | ("SchemaService", "CreateSchema" | "UpdateSchema" | "DeleteSchema") => Right::Edit,
        ("EventService", "Publish") => Right::Publish,
        ("PluginService", "InstallPlugin" | "UpdatePlugin" | "DeletePlugin")
        | ("ExternalService", "RegisterService" | "UpdateService" | "DeleteService")
        | ("ConnectionService", "CreateConnection" | "UpdateConnection" | "DeleteConnection") => Right::Extend,
        _ => return None,
    };
    Some(right)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every RPC of `oort.v1`, from the descriptor set the server serves.
    fn methods() -> Vec<String> {
        let set = prost_types::FileDescriptorSet::decode(oort_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut paths = Vec::new();
        for file in set.file.iter().filter(|f| f.package() == "oort.v1") {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!("/oort.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        paths
    }

    #[test]
    fn every_method_of_the_api_is_in_the_table() {
        let methods = methods();
        assert!(methods.len() > 25, "{methods:?}");
        for path in methods {
            assert!(required(&path).is_some(), "{path} is not in the rights table");
        }
        assert_eq!(required("/oort.v1.RuleService/Nope"), None);
        assert_eq!(required("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), Some(Right::Read));
    }

    #[test]
    fn roles_hold_what_the_docs_say() {
        let can = |role: Role, path: &str| role.allows(required(path).unwrap_or(Right::Admin));
        assert!(can(Role::Editor, "/oort.v1.RuleService/CreateRule"));
        assert!(!can(Role::Editor, "/oort.v1.PluginService/InstallPlugin"));
        assert!(!can(Role::Editor, "/oort.v1.ExternalService/RegisterService"));
        assert!(can(Role::Viewer, "/oort.v1.RuleService/TailRule"));
        assert!(!can(Role::Viewer, "/oort.v1.StreamService/DeleteStream"));
        assert!(!can(Role::Viewer, "/oort.v1.EventService/Publish"));
        assert!(can(Role::Publisher, "/oort.v1.EventService/Publish"));
        assert!(!can(Role::Publisher, "/oort.v1.StreamService/ListStreams"));
        assert!(can(Role::Admin, "/oort.v1.PluginService/DeletePlugin"));
        assert!(!can(Role::Editor, "/oort.v1.Unknown/Method"));
        assert_eq!("viewer".parse::<Role>(), Ok(Role::Viewer));
        assert!("root".parse::<Role>().unwrap_err().contains("admin, editor, viewer and publisher"));
    }
}
