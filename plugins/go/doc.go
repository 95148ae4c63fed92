// Package sdk writes Oort portable plugins in Go: SQL functions, sources and
// sinks that run in a process of their own and speak oort.plugin.v1 over a Unix
// socket with oortd.
//
// Implement Function, Source or Sink (in the style of eKuiper's api.Function,
// api.Source and api.Sink), list them in a Plugin, and call Serve from main:
//
//	func main() {
//		sdk.Serve(&sdk.Plugin{
//			Name: "mine", Version: "1.0.0",
//			Functions: []sdk.FunctionDef{{Name: "my_upper", Function: upper{}}},
//		})
//	}
//
// Serve does the whole protocol: it checks the start-up environment, listens on
// the socket (mode 0600), prints the handshake line, serves the plugin service
// and grpc.health.v1, calls functions in batches (one result or error per
// row; a panic is recovered into that row's error), makes one source or sink
// instance per stream, and exits after Shutdown or when stdin closes.
//
// Map of the package:
//   - api.go: the interfaces (Function, Source, Sink, Context) and Plugin
//   - value.go: conversions between Go values and oort.v1.Value, property helpers
//   - serve.go: Serve/Run, the environment, the socket, the handshake, stopping
//   - service.go: the PluginService handlers
//   - codec.go: the gRPC codec, hand-written for Invoke batches
//   - sdktest/: a harness that runs one symbol without oortd
package sdk
