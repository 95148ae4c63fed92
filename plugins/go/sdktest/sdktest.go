// Package sdktest runs a plugin's functions, sources and sinks in a test,
// without oortd (in the spirit of eKuiper's sdk/go/mock). It serves the Plugin
// with sdk.Run on a private Unix socket in the test process and calls it over
// oort.plugin.v1, so a test sees exactly what the server would: values after
// their round trip through oort.v1.Value, per-row errors, recovered panics and
// the gRPC status of a refused stream.
//
//	h := sdktest.Start(t, plugin())
//	results, err := h.Call("go_reverse", []any{"abc"}) // results[0].Value == "cba"
package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	sdk "github.com/oort-edge/oort/plugins/go"
)

// Harness is a plugin served for one test.
type Harness struct {
	// Client calls the plugin directly, for what the helpers do not cover.
	Client pluginv1.PluginServiceClient
	// Conn is the connection, for the health service.
	Conn *grpc.ClientConn
}

// Start serves p until the test ends.
func Start(t testing.TB, p *sdk.Plugin) *Harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "oort-sdktest") // short: socket paths have a length limit
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "plugin.sock")
	env := map[string]string{
		sdk.EnvMagicCookie:   sdk.MagicCookie,
		sdk.EnvProtocol:      fmt.Sprint(sdk.ProtocolVersion),
		sdk.EnvSocket:        socket,
		sdk.EnvShutdownGrace: "2000",
	}
	logs := &testWriter{t: t}
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- sdk.Run(ctx, p, sdk.Options{
			Getenv: func(k string) string { return env[k] },
			Stdout: stdoutW,
			Stderr: logs,
		})
		stdoutW.Close()
	}()
	handshake := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		n, _ := stdoutR.Read(buf)
		handshake <- string(buf[:n])
		_, _ = io.Copy(io.Discard, stdoutR)
	}()
	cleanup := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("sdktest: the plugin did not stop")
		}
		logs.close()
		os.RemoveAll(dir)
	}
	select {
	case line := <-handshake:
		if !strings.HasPrefix(line, "OORT_PLUGIN|") {
			cleanup()
			err := <-done
			t.Fatalf("sdktest: the plugin did not start: %q %v", line, err)
		}
	case err := <-done:
		t.Fatalf("sdktest: the plugin did not start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("sdktest: no handshake within 10 s")
	}
	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cleanup()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cleanup()
	})
	return &Harness{Client: pluginv1.NewPluginServiceClient(conn), Conn: conn}
}

// testWriter sends the plugin's logs to the test log until the test ends
// (testing refuses logs after that).
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

// Result is one row's outcome: a value, or the error the server would count.
type Result struct {
	Value any
	Err   string
}

// Call calls a function on rows of arguments, in one batch; the argument count
// is that of the first row (0 without rows). For an aggregate, pass each
// argument as a []any of the group's values. The error is the stream's status
// (NOT_FOUND, INVALID_ARGUMENT, ...); row errors are in the results. Like the
// server, it waits for the acknowledgement of the open (batch 0) before it
// sends the batch (batch 1), and fails if the first response is not that.
func (h *Harness) Call(function string, rows ...[]any) ([]Result, error) {
	argCount := 0
	if len(rows) > 0 {
		argCount = len(rows[0])
	}
	return h.CallN(function, argCount, rows...)
}

// CallN is Call with the argument count given.
func (h *Harness) CallN(function string, argCount int, rows ...[]any) ([]Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := h.Client.Invoke(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Open{Open: &pluginv1.InvokeOpen{
		Function: function, RuleId: "sdktest", ArgCount: uint32(argCount)}}}); err != nil {
		return nil, err
	}
	// The acknowledgement of the open comes first, before any batch is sent;
	// a refused stream ends with its status instead.
	ack, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if ack.GetBatchId() != 0 || len(ack.GetResults()) != 0 {
		return nil, fmt.Errorf("the first response is not the acknowledgement of the open (batch 0, no results): batch %d, %d results",
			ack.GetBatchId(), len(ack.GetResults()))
	}
	batch := &pluginv1.InvokeBatch{BatchId: 1}
	for i, row := range rows {
		argRow := &pluginv1.ArgRow{}
		for j, arg := range row {
			v, err := sdk.ToValue(arg)
			if err != nil {
				return nil, fmt.Errorf("row %d argument %d: %w", i, j, err)
			}
			argRow.Args = append(argRow.Args, v)
		}
		batch.Rows = append(batch.Rows, argRow)
	}
	// A refused stream may already be closed: its status comes from Recv.
	if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: batch}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	_ = stream.CloseSend()
	if resp.GetBatchId() != batch.BatchId {
		return nil, fmt.Errorf("response of batch %d for batch %d", resp.GetBatchId(), batch.BatchId)
	}
	out := make([]Result, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		if e, ok := r.GetResult().(*pluginv1.CallResult_Error); ok {
			out[i].Err = e.Error
		} else {
			out[i].Value = sdk.FromValue(r.GetValue())
		}
	}
	return out, nil
}

// ReadSource opens a source and returns its first n events, waiting at most
// timeout for them; then it ends the stream, as the server does when a rule stops.
// The first response must be the acknowledgement of the open (no events).
func (h *Harness) ReadSource(source, datasource string, props map[string]any, n int, timeout time.Duration) ([]sdk.Event, error) {
	config, err := structpb.NewStruct(props)
	if err != nil {
		return nil, fmt.Errorf("props: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stream, err := h.Client.OpenSource(ctx, &pluginv1.OpenSourceRequest{
		Source: source, Datasource: datasource, Config: config, RuleId: "sdktest"})
	if err != nil {
		return nil, err
	}
	// The acknowledgement of the open comes first: a response without events.
	// A refused stream ends with its status instead.
	ack, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if len(ack.GetEvents()) != 0 {
		return nil, fmt.Errorf("the first response is not the acknowledgement of the open (no events): %d events", len(ack.GetEvents()))
	}
	var events []sdk.Event
	for len(events) < n {
		resp, err := stream.Recv()
		if err != nil {
			return events, err
		}
		for _, e := range resp.GetEvents() {
			events = append(events, sdk.FromEvent(e))
		}
	}
	return events[:n], nil
}

// WriteSink opens a sink and sends the batches, and returns each batch's
// acknowledgement error ("" when written), after closing the stream. Like the
// server, it waits for the acknowledgement of the open (batch 0) before it
// sends the first batch (batch 1).
func (h *Harness) WriteSink(sink string, props map[string]any, batches ...[]sdk.Event) ([]string, error) {
	config, err := structpb.NewStruct(props)
	if err != nil {
		return nil, fmt.Errorf("props: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := h.Client.OpenSink(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Open{Open: &pluginv1.SinkOpen{
		Sink: sink, Config: config, RuleId: "sdktest"}}}); err != nil {
		return nil, err
	}
	// The acknowledgement of the open (batch 0) comes first, before any batch
	// is sent; a refused stream ends with its status instead.
	opened, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if opened.GetBatchId() != 0 || opened.GetError() != "" {
		return nil, fmt.Errorf("the first response is not the acknowledgement of the open (batch 0, no error): batch %d, error %q",
			opened.GetBatchId(), opened.GetError())
	}
	var acks []string
	for i, events := range batches {
		batch := &pluginv1.SinkBatch{BatchId: uint64(i + 1)}
		for j, e := range events {
			converted, err := sdk.ToEvent(e)
			if err != nil {
				return acks, fmt.Errorf("batch %d event %d: %w", i, j, err)
			}
			batch.Events = append(batch.Events, converted)
		}
		if err := stream.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Batch{Batch: batch}}); err != nil && !errors.Is(err, io.EOF) {
			return acks, err
		}
		ack, err := stream.Recv()
		if err != nil {
			return acks, err
		}
		if ack.GetBatchId() != batch.BatchId {
			return acks, fmt.Errorf("acknowledgement of batch %d for batch %d", ack.GetBatchId(), batch.BatchId)
		}
		acks = append(acks, ack.GetError())
	}
	if err := stream.CloseSend(); err != nil {
		return acks, err
	}
	// The end of the stream: the sink instance is closed.
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return acks, err
	}
	return acks, nil
}
