package sdk_test

// End-to-end tests of the SDK through plugins/examples/godemo, started as
// oortd starts it and called over its Unix socket.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
	sdk "github.com/oort-edge/oort/plugins/go"
)

func value(t testing.TB, v any) *oortv1.Value {
	t.Helper()
	out, err := sdk.ToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rows(t testing.TB, args ...[]any) []*pluginv1.ArgRow {
	t.Helper()
	out := make([]*pluginv1.ArgRow, len(args))
	for i, row := range args {
		out[i] = &pluginv1.ArgRow{}
		for _, a := range row {
			out[i].Args = append(out[i].Args, value(t, a))
		}
	}
	return out
}

// checkInvokeAck fails unless resp is the acknowledgement of an Invoke open:
// batch 0, no results.
func checkInvokeAck(t testing.TB, resp *pluginv1.InvokeResponse, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("no acknowledgement of the open: %v", err)
	}
	if resp.GetBatchId() != 0 || len(resp.GetResults()) != 0 {
		t.Fatalf("the first response is not the acknowledgement of the open: %v", resp)
	}
}

// checkSourceAck fails unless resp is the acknowledgement of an OpenSource:
// no events.
func checkSourceAck(t testing.TB, resp *pluginv1.OpenSourceResponse, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("no acknowledgement of the open: %v", err)
	}
	if len(resp.GetEvents()) != 0 {
		t.Fatalf("the first response is not the acknowledgement of the open: %v", resp)
	}
}

// checkSinkAck fails unless resp is the acknowledgement of a SinkOpen: batch
// 0, no error.
func checkSinkAck(t testing.TB, resp *pluginv1.OpenSinkResponse, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("no acknowledgement of the open: %v", err)
	}
	if resp.GetBatchId() != 0 || resp.GetError() != "" {
		t.Fatalf("the first response is not the acknowledgement of the open: %v", resp)
	}
}

// invoke opens an Invoke stream, waits for the acknowledgement of the open (as
// the server does) and sends the batches, numbered from 1; it returns the
// batches' responses, or the stream's status (a refusal comes instead of the
// acknowledgement).
func invoke(t testing.TB, p *pluginProcess, function string, argCount uint32, batches ...[]*pluginv1.ArgRow) ([]*pluginv1.InvokeResponse, error) {
	t.Helper()
	stream, err := p.client.Invoke(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	open := &pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Open{Open: &pluginv1.InvokeOpen{
		Function: function, RuleId: "rule1", ArgCount: argCount}}}
	if err := stream.Send(open); err != nil {
		t.Fatal(err)
	}
	ack, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	checkInvokeAck(t, ack, nil)
	var out []*pluginv1.InvokeResponse
	for i, batch := range batches {
		req := &pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: &pluginv1.InvokeBatch{
			BatchId: uint64(1 + i), Rows: batch}}}
		if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp)
	}
}

// results turns a response into values or "error: ..." strings.
func results(resp *pluginv1.InvokeResponse) []any {
	out := make([]any, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		if e, ok := r.GetResult().(*pluginv1.CallResult_Error); ok {
			out[i] = "error: " + e.Error
		} else {
			out[i] = sdk.FromValue(r.GetValue())
		}
	}
	return out
}

func wantCode(t testing.TB, err error, code codes.Code, contains string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("status %v (%v), want %v", status.Code(err), err, code)
	}
	if !strings.Contains(status.Convert(err).Message(), contains) {
		t.Fatalf("message %q does not contain %q", status.Convert(err).Message(), contains)
	}
}

func TestDescribe(t *testing.T) {
	p := startGodemo(t)
	resp, err := p.client.Describe(testContext(t), &pluginv1.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Name != "godemo" || resp.Version != "1.0.0" || resp.ProtocolVersion != 1 {
		t.Fatalf("describe: %v", resp)
	}
	got := map[string]string{}
	for _, s := range resp.Symbols {
		kind := s.Kind.String()
		if s.Aggregate {
			kind += " aggregate"
		}
		got[s.Name] = kind
		if s.Description == "" {
			t.Errorf("%s has no description", s.Name)
		}
	}
	want := map[string]string{
		"go_reverse": "SYMBOL_KIND_FUNCTION",
		"go_max":     "SYMBOL_KIND_FUNCTION aggregate",
		"go_div":     "SYMBOL_KIND_FUNCTION",
		"goticker":   "SYMBOL_KIND_SOURCE",
		"gofile":     "SYMBOL_KIND_SINK",
	}
	if len(got) != len(want) {
		t.Fatalf("symbols %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}

	// The manifest says the same.
	raw, err := os.ReadFile(filepath.Join("..", "examples", "godemo", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Name, Version, Kind, Language, Executable string
		Functions                                 []struct {
			Name, Description string
			Aggregate         bool
		}
		Sources, Sinks []struct{ Name, Description string }
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Name != resp.Name || manifest.Version != resp.Version || manifest.Kind != "portable" ||
		manifest.Language != "go" || manifest.Executable != "godemo" {
		t.Fatalf("manifest %+v does not match %v", manifest, resp)
	}
	fromManifest := map[string]string{}
	descriptions := map[string]string{}
	for _, f := range manifest.Functions {
		fromManifest[f.Name] = "SYMBOL_KIND_FUNCTION"
		if f.Aggregate {
			fromManifest[f.Name] += " aggregate"
		}
		descriptions[f.Name] = f.Description
	}
	for _, s := range manifest.Sources {
		fromManifest[s.Name] = "SYMBOL_KIND_SOURCE"
		descriptions[s.Name] = s.Description
	}
	for _, s := range manifest.Sinks {
		fromManifest[s.Name] = "SYMBOL_KIND_SINK"
		descriptions[s.Name] = s.Description
	}
	for _, s := range resp.Symbols {
		if descriptions[s.Name] != s.Description {
			t.Errorf("%s: manifest says %q, Describe %q", s.Name, descriptions[s.Name], s.Description)
		}
	}
	if len(fromManifest) != len(got) {
		t.Fatalf("manifest symbols %v, Describe %v", fromManifest, got)
	}
	for k, v := range got {
		if fromManifest[k] != v {
			t.Errorf("manifest %s: %q, Describe %q", k, fromManifest[k], v)
		}
	}
}

func TestInvoke(t *testing.T) {
	p := startGodemo(t)

	t.Run("scalar, with a failing row", func(t *testing.T) {
		resps, err := invoke(t, p, "go_reverse", 1,
			rows(t, []any{"abc"}, []any{"héllo"}, []any{nil}, []any{int64(42)}, []any{""}),
			rows(t, []any{"xy"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resps) != 2 || resps[0].BatchId != 1 || resps[1].BatchId != 2 {
			t.Fatalf("responses %v", resps)
		}
		got := results(resps[0])
		want := []any{"cba", "olléh", nil, "error: go_reverse expects a string, got int64", ""}
		if len(got) != len(want) {
			t.Fatalf("results %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("row %d: %#v, want %#v", i, got[i], want[i])
			}
		}
		if got := results(resps[1]); len(got) != 1 || got[0] != "yx" {
			t.Errorf("second batch: %v", got)
		}
	})

	t.Run("aggregate", func(t *testing.T) {
		resps, err := invoke(t, p, "go_max", 1, rows(t,
			[]any{[]any{int64(3), int64(9), nil, int64(-2)}},
			[]any{[]any{1.5, int64(2), 0.5}},
			[]any{[]any{}},
			[]any{[]any{int64(1), "x"}},
		))
		if err != nil {
			t.Fatal(err)
		}
		got := results(resps[0])
		want := []any{int64(9), 2.0, nil, "error: go_max expects numbers, got string"}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("row %d: %#v, want %#v", i, got[i], want[i])
			}
		}
	})

	t.Run("a panic is that row's error", func(t *testing.T) {
		resps, err := invoke(t, p, "go_div", 2, rows(t,
			[]any{int64(10), int64(2)}, []any{int64(1), int64(0)}, []any{int64(9), int64(3)}))
		if err != nil {
			t.Fatal(err)
		}
		got := results(resps[0])
		if got[0] != int64(5) || got[2] != int64(3) {
			t.Fatalf("results %v", got)
		}
		msg, _ := got[1].(string)
		if !strings.HasPrefix(msg, "error: go_div panicked: ") || !strings.Contains(msg, "divide by zero") {
			t.Fatalf("row 1: %#v", got[1])
		}
		// The plugin still serves.
		resps, err = invoke(t, p, "go_div", 2, rows(t, []any{int64(8), int64(4)}))
		if err != nil || results(resps[0])[0] != int64(2) {
			t.Fatalf("after the panic: %v %v", resps, err)
		}
	})

	t.Run("a row with another argument count is that row's error", func(t *testing.T) {
		resps, err := invoke(t, p, "go_div", 2, rows(t, []any{int64(1)}, []any{int64(4), int64(2)}))
		if err != nil {
			t.Fatal(err)
		}
		got := results(resps[0])
		if msg, _ := got[0].(string); !strings.Contains(msg, "1 arguments") || got[1] != int64(2) {
			t.Fatalf("results %v", got)
		}
	})

	t.Run("unknown function is NOT_FOUND", func(t *testing.T) {
		_, err := invoke(t, p, "go_nope", 1)
		wantCode(t, err, codes.NotFound, `no function "go_nope"`)
	})

	t.Run("wrong argument count is INVALID_ARGUMENT", func(t *testing.T) {
		_, err := invoke(t, p, "go_reverse", 2)
		wantCode(t, err, codes.InvalidArgument, "go_reverse takes 1 argument, got 2")
	})

	t.Run("the open is acknowledged before any batch is sent", func(t *testing.T) {
		stream, err := p.client.Invoke(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Open{Open: &pluginv1.InvokeOpen{
			Function: "go_reverse", RuleId: "rule1", ArgCount: 1}}}); err != nil {
			t.Fatal(err)
		}
		// Only the open is sent: the acknowledgement must come all the same.
		ack, err := stream.Recv()
		checkInvokeAck(t, ack, err)
		// Then the stream serves batches as usual.
		if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: &pluginv1.InvokeBatch{
			BatchId: 1, Rows: rows(t, []any{"ab"})}}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || resp.BatchId != 1 || results(resp)[0] != "ba" {
			t.Fatalf("batch 1: %v %v", resp, err)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v", err)
		}
	})

	t.Run("an empty batch gets an empty response", func(t *testing.T) {
		resps, err := invoke(t, p, "go_reverse", 1, nil)
		if err != nil || len(resps) != 1 || len(resps[0].Results) != 0 || resps[0].BatchId != 1 {
			t.Fatalf("%v %v", resps, err)
		}
	})
}

func config(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpenSource(t *testing.T) {
	p := startGodemo(t)

	t.Run("events every interval, up to count", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		start := time.Now()
		stream, err := p.client.OpenSource(ctx, &pluginv1.OpenSourceRequest{
			Source: "goticker", Datasource: "demo", RuleId: "r1",
			Config: config(t, map[string]any{"interval_ms": 30, "count": 4}),
		})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := stream.Recv()
		checkSourceAck(t, ack, err)
		var ticks []int64
		for len(ticks) < 4 {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.Events {
				ev := sdk.FromEvent(e)
				ticks = append(ticks, ev.Fields["tick"].(int64))
				if ev.Meta["datasource"] != "demo" || ev.Timestamp.IsZero() {
					t.Errorf("event %+v", ev)
				}
			}
		}
		if elapsed := time.Since(start); elapsed < 4*30*time.Millisecond {
			t.Errorf("4 ticks of 30 ms in %v", elapsed)
		}
		for i, tick := range ticks {
			if tick != int64(i+1) {
				t.Fatalf("ticks %v", ticks)
			}
		}
		// No fifth event: the stream stays open, silent, until we cancel.
		more := make(chan error, 1)
		go func() {
			_, err := stream.Recv()
			more <- err
		}()
		select {
		case err := <-more:
			t.Fatalf("after count: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		cancel()
		if err := <-more; status.Code(err) != codes.Canceled {
			t.Fatalf("after cancel: %v", err)
		}
	})

	t.Run("default interval", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		start := time.Now()
		stream, err := p.client.OpenSource(ctx, &pluginv1.OpenSourceRequest{Source: "goticker"})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := stream.Recv()
		checkSourceAck(t, ack, err)
		for range 2 {
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		if elapsed := time.Since(start); elapsed < 200*time.Millisecond {
			t.Errorf("2 ticks of 100 ms in %v", elapsed)
		}
	})

	t.Run("the open is acknowledged before the first event", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		// The first tick is a minute away: only the acknowledgement can come now.
		stream, err := p.client.OpenSource(ctx, &pluginv1.OpenSourceRequest{
			Source: "goticker", Config: config(t, map[string]any{"interval_ms": 60000})})
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			ack, err := stream.Recv()
			if err == nil && len(ack.GetEvents()) != 0 {
				err = fmt.Errorf("the first response has %d events", len(ack.GetEvents()))
			}
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("acknowledgement: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no acknowledgement of the open within 10 s")
		}
	})

	t.Run("unknown source is NOT_FOUND", func(t *testing.T) {
		stream, err := p.client.OpenSource(testContext(t), &pluginv1.OpenSourceRequest{Source: "nope"})
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, err, codes.NotFound, `no source "nope"`)
	})

	t.Run("bad configuration is INVALID_ARGUMENT", func(t *testing.T) {
		stream, err := p.client.OpenSource(testContext(t), &pluginv1.OpenSourceRequest{
			Source: "goticker", Config: config(t, map[string]any{"interval_ms": 1.5})})
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, err, codes.InvalidArgument, "interval_ms")
	})
}

func TestOpenSink(t *testing.T) {
	p := startGodemo(t)
	dir := t.TempDir()

	openSink := func(t *testing.T, props map[string]any) pluginv1.PluginService_OpenSinkClient {
		stream, err := p.client.OpenSink(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Open{Open: &pluginv1.SinkOpen{
			Sink: "gofile", RuleId: "r1", Config: config(t, props)}}}); err != nil {
			t.Fatal(err)
		}
		return stream
	}
	// opened is openSink and the acknowledgement of the open, as the server
	// waits for it before it sends batches.
	opened := func(t *testing.T, props map[string]any) pluginv1.PluginService_OpenSinkClient {
		stream := openSink(t, props)
		ack, err := stream.Recv()
		checkSinkAck(t, ack, err)
		return stream
	}
	send := func(t *testing.T, stream pluginv1.PluginService_OpenSinkClient, id uint64, events ...map[string]any) {
		batch := &pluginv1.SinkBatch{BatchId: id}
		for _, fields := range events {
			e, err := sdk.ToEvent(sdk.Event{Fields: fields})
			if err != nil {
				t.Fatal(err)
			}
			batch.Events = append(batch.Events, e)
		}
		if err := stream.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Batch{Batch: batch}}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("acknowledges each batch once written", func(t *testing.T) {
		path := filepath.Join(dir, "out.jsonl")
		stream := opened(t, map[string]any{"path": path})
		send(t, stream, 1, map[string]any{"a": int64(1), "s": "x"}, map[string]any{"a": int64(2), "f": 0.5})
		ack, err := stream.Recv()
		if err != nil || ack.BatchId != 1 || ack.Error != "" {
			t.Fatalf("ack %v %v", ack, err)
		}
		// Written when acknowledged, before the stream ends.
		if lines := readLines(t, path); len(lines) != 2 {
			t.Fatalf("after the first ack: %q", lines)
		}
		send(t, stream, 2, map[string]any{"nested": map[string]any{"l": []any{true, nil}}})
		ack, err = stream.Recv()
		if err != nil || ack.BatchId != 2 || ack.Error != "" {
			t.Fatalf("ack %v %v", ack, err)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v", err)
		}
		want := []string{`{"a":1,"s":"x"}`, `{"a":2,"f":0.5}`, `{"nested":{"l":[true,null]}}`}
		lines := readLines(t, path)
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("file:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("the open is acknowledged before any batch is sent", func(t *testing.T) {
		path := filepath.Join(dir, "opened.jsonl")
		// Only the open is sent: the acknowledgement must come all the same,
		// once the sink is open (its file created).
		stream := openSink(t, map[string]any{"path": path})
		ack, err := stream.Recv()
		checkSinkAck(t, ack, err)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("acknowledged before the sink was open: %v", err)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v", err)
		}
	})

	t.Run("missing path is INVALID_ARGUMENT", func(t *testing.T) {
		_, err := openSink(t, map[string]any{}).Recv()
		wantCode(t, err, codes.InvalidArgument, `"path"`)
	})

	t.Run("a path that cannot be opened is UNAVAILABLE", func(t *testing.T) {
		_, err := openSink(t, map[string]any{"path": dir}).Recv() // a directory
		wantCode(t, err, codes.Unavailable, "gofile open")
	})

	t.Run("unknown sink is NOT_FOUND", func(t *testing.T) {
		stream, err := p.client.OpenSink(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Open{Open: &pluginv1.SinkOpen{Sink: "nope"}}}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		wantCode(t, err, codes.NotFound, `no sink "nope"`)
	})
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	return lines
}

func TestHealthAndSocket(t *testing.T) {
	p := startGodemo(t)
	health := healthpb.NewHealthClient(p.conn)
	for _, service := range []string{"", "oort.plugin.v1.PluginService"} {
		resp, err := health.Check(testContext(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", service, resp, err)
		}
	}
	fi, err := os.Stat(p.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
}

func TestRefusesToStartOutsideOortd(t *testing.T) {
	cases := []struct {
		name, drop, key, value, message string
	}{
		{name: "no cookie", drop: sdk.EnvMagicCookie, message: "meant to be started by oortd"},
		{name: "wrong cookie", key: sdk.EnvMagicCookie, value: "nope", message: "meant to be started by oortd"},
		{name: "another protocol", key: sdk.EnvProtocol, value: "2", message: `protocol "2"`},
		{name: "no socket", drop: sdk.EnvSocket, message: "OORT_PLUGIN_SOCKET is not set"},
		{name: "bad grace", key: sdk.EnvShutdownGrace, value: "soon", message: "OORT_PLUGIN_SHUTDOWN_GRACE_MS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := serverEnv(privateSocket(t))
			delete(env, c.drop)
			if c.key != "" {
				env[c.key] = c.value
			}
			p := spawn(t, godemo(t), env)
			if code := p.waitExit(t, exitTimeout); code != 1 {
				t.Fatalf("exit code %d, want 1", code)
			}
			if !strings.Contains(p.stderr.String(), c.message) {
				t.Fatalf("stderr %q does not contain %q", p.stderr.String(), c.message)
			}
			if rest, _ := io.ReadAll(p.stdout); len(rest) != 0 {
				t.Fatalf("stdout %q, want nothing", rest)
			}
		})
	}
}

func TestExitsWhenStdinCloses(t *testing.T) {
	p := startGodemo(t)
	// An open sink is closed (its file flushed) on the way out.
	path := filepath.Join(t.TempDir(), "out.jsonl")
	stream, err := p.client.OpenSink(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Open{Open: &pluginv1.SinkOpen{
		Sink: "gofile", Config: config(t, map[string]any{"path": path})}}}); err != nil {
		t.Fatal(err)
	}
	ack, err := stream.Recv()
	checkSinkAck(t, ack, err)
	if _, err := p.client.Describe(testContext(t), &pluginv1.DescribeRequest{}); err != nil {
		t.Fatal(err)
	}
	p.stdin.Close()
	if code := p.waitExit(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if !strings.Contains(p.stderr.String(), "stdin closed") {
		t.Fatalf("stderr: %s", p.stderr.String())
	}
	if rest, _ := io.ReadAll(p.stdout); len(rest) != 0 {
		t.Fatalf("more on stdout after the handshake: %q", rest)
	}
	if _, err := os.Stat(p.socket); !os.IsNotExist(err) {
		t.Errorf("the socket is still there: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	p := startGodemo(t)
	ctx := testContext(t)
	source, err := p.client.OpenSource(ctx, &pluginv1.OpenSourceRequest{
		Source: "goticker", Config: config(t, map[string]any{"interval_ms": 10})})
	if err != nil {
		t.Fatal(err)
	}
	sourceAck, err := source.Recv()
	checkSourceAck(t, sourceAck, err)
	if _, err := source.Recv(); err != nil {
		t.Fatal(err)
	}
	invokeStream, err := p.client.Invoke(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := invokeStream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Open{Open: &pluginv1.InvokeOpen{
		Function: "go_reverse", ArgCount: 1}}}); err != nil {
		t.Fatal(err)
	}
	invokeAck, err := invokeStream.Recv()
	checkInvokeAck(t, invokeAck, err)

	start := time.Now()
	if _, err := p.client.Shutdown(ctx, &pluginv1.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	if code := p.waitExit(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Shutdown took %v, more than the grace period", elapsed)
	}
	// The open streams ended with the plugin.
	for {
		if _, err := source.Recv(); err != nil {
			if c := status.Code(err); c != codes.Unavailable {
				t.Errorf("source stream ended with %v", err)
			}
			break
		}
	}
	if _, err := invokeStream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("invoke stream ended with %v", err)
	}
}

func TestStdoutAfterTheHandshakeGoesToStderr(t *testing.T) {
	p := start(t, build(t, filepath.Join("internal", "testplugin")))
	// The test no longer reads stdout, like the server: if the print went
	// there, it would fill the pipe and the call would not return.
	resps, err := invoke(t, p, "t_print", 0, rows(t, []any{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := results(resps[0]); got[0] != "printed" {
		t.Fatalf("results %v", got)
	}
	if !strings.Contains(p.stderr.String(), "testplugin: stray print xxx") {
		t.Fatal("the print is not on stderr")
	}
	p.stdin.Close()
	if code := p.waitExit(t, exitTimeout); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if rest, _ := io.ReadAll(p.stdout); len(rest) != 0 {
		t.Fatalf("%d more bytes on stdout", len(rest))
	}
}
