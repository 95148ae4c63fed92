//! How oortd finds its configuration: oort.toml in the working directory,
//! environment variables, flags; and the reflection protocol older tools use.

mod common;

use common::Oortd;
use oort_proto::v1::{CreateStreamRequest, ListStreamsRequest};
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

#[tokio::test]
async fn environment_variables_configure_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("from-env");
    let mut command = Oortd::command();
    command.current_dir(dir.path()).env("OORT_LISTEN", "127.0.0.1:0").env("OORT_DATA_DIR", &data_dir);
    let oortd = Oortd::launch(command, &data_dir).await;
    assert!(data_dir.join("catalog").is_dir(), "the catalog lives in OORT_DATA_DIR");
    assert!(!dir.path().join("data").exists(), "the default ./data is not used");
    drop(oortd);
}

#[tokio::test]
async fn oort_toml_in_the_working_directory_is_read_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oort.toml"), "listen = \"127.0.0.1:0\"\ndata_dir = \"from-file\"\n").unwrap();
    let mut command = Oortd::command();
    command.current_dir(dir.path());
    let oortd = Oortd::launch(command, &dir.path().join("from-file")).await;
    assert!(dir.path().join("from-file/catalog").is_dir(), "data_dir from oort.toml");
    drop(oortd);

    let mut command = Oortd::command();
    command.current_dir(dir.path()).args(["--data-dir", "from-flag"]).env("OORT_DATA_DIR", "from-env");
    let oortd = Oortd::launch(command, &dir.path().join("from-flag")).await;
    let mut streams = oortd.streams().await;
    streams
        .create_stream(CreateStreamRequest { sql: r#"CREATE STREAM s () WITH (DATASOURCE="s")"#.into() })
        .await
        .unwrap();
    assert_eq!(streams.list_streams(ListStreamsRequest::default()).await.unwrap().into_inner().streams.len(), 1);
    assert!(dir.path().join("from-flag/catalog").is_dir(), "the flag wins over the variable and the file");
    assert!(!dir.path().join("from-env").exists());
}

#[test]
fn a_bad_config_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = 9081\n").unwrap();
    let output = Oortd::command().arg("--config").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml") && stderr.contains("listen"), "{stderr}");
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_services() {
    let dir = tempfile::tempdir().unwrap();
    let oortd = Oortd::start(dir.path()).await;
    let mut client = ServerReflectionClient::new(oortd.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "oort.v1.RuleService"), "{names:?}");
}
