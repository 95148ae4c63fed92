//! Tests of the parent module.

use super::*;

fn args(list: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("oortd").chain(list.iter().copied())).unwrap()
}

#[test]
fn flags_override_the_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oort.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:7000\"\ndata_dir = \"/srv/oort\"\nlog_format = \"json\"\n").unwrap();
    let config = Config::load(args(&["--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0"])).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:0");
    assert_eq!(config.data_dir, PathBuf::from("/srv/oort"));
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.log_level, "info");
}

#[test]
fn unknown_keys_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oort.toml");
    std::fs::write(&path, "listn = \"127.0.0.1:7000\"\n").unwrap();
    let err = Config::load(args(&["--config", path.to_str().unwrap()])).unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
    let missing = dir.path().join("nope.toml");
    assert!(matches!(Config::load(args(&["--config", missing.to_str().unwrap()])), Err(ConfigError::Read { .. })));
}

#[test]
fn portable_plugin_settings_have_defaults_and_refuse_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oort.toml");
    std::fs::write(&path, "plugin_python = \"/usr/bin/python3.12\"\nplugin_call_timeout_ms = 250\n").unwrap();
    let config = Config::load(args(&["--config", path.to_str().unwrap()])).unwrap();
    assert_eq!(config.portable.python, "/usr/bin/python3.12");
    assert_eq!(config.portable.call_timeout, Duration::from_millis(250));
    assert_eq!(config.portable.start_timeout, oort_plugin_host::PortableConfig::default().start_timeout);
    std::fs::write(&path, "plugin_health_interval_ms = 0\n").unwrap();
    let err = Config::load(args(&["--config", path.to_str().unwrap()])).unwrap_err();
    assert!(err.to_string().contains("plugin_health_interval_ms"), "{err}");
}

#[test]
fn optional_endpoints_take_an_address_or_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oort.toml");
    std::fs::write(&path, "metrics_listen = \"127.0.0.1:9090\"\n").unwrap();
    let from_file = Config::load(args(&["--config", path.to_str().unwrap()])).unwrap();
    assert_eq!(from_file.metrics_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9090"));
    let off = Config::load(args(&["--config", path.to_str().unwrap(), "--metrics-listen", "off"])).unwrap();
    assert_eq!(off.metrics_listen, None);
    assert_eq!(
        Config::load(args(&["--config", path.to_str().unwrap(), "--http-push-listen", "off"]))
            .unwrap()
            .http_push_listen,
        None
    );
    let err = Config::load(args(&["--metrics-listen", "everywhere"])).unwrap_err();
    assert!(err.to_string().contains("metrics_listen") && err.to_string().contains("everywhere"), "{err}");
    assert_eq!(Config::default().metrics_listen, None, "off by default");
}

#[test]
fn connections_are_declared_once() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/oort.toml");
    let config = Config::load(args(&["--config", deploy])).unwrap();
    let default = config.connections.iter().find(|c| c.name == "default").unwrap();
    assert_eq!(default.props["server"], "tcp://mosquitto:1883");
    assert!(default.declared);

    let plain = Config::load(args(&["--mqtt-server", "tcp://10.0.0.2:1883"])).unwrap();
    assert_eq!(plain.connections.len(), 1);
    assert_eq!(plain.connections[0].props["server"], "tcp://10.0.0.2:1883");

    let both = Config::load(args(&["--config", deploy, "--mqtt-server", "tcp://h:1883"])).unwrap_err();
    assert!(both.to_string().contains("not both"), "{both}");
    let dir = tempfile::tempdir().unwrap();
    let untyped = dir.path().join("oort.toml");
    std::fs::write(&untyped, "[connections.site]\nserver = \"tcp://h:1883\"\n").unwrap();
    let err = Config::load(args(&["--config", untyped.to_str().unwrap()])).unwrap_err();
    assert!(err.to_string().contains("[connections.site] needs `type`"), "{err}");
}
