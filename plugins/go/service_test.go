package sdk_test

// The instance life cycle and error paths, with plugins made for the test and
// served in process through sdktest.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	sdk "github.com/oort-edge/oort/plugins/go"
	"github.com/oort-edge/oort/plugins/go/sdktest"
)

// journal records what the instances were asked to do.
type journal struct {
	mu     sync.Mutex
	events []string
	closed chan string
}

func newJournal() *journal { return &journal{closed: make(chan string, 16)} }

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, s)
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.events, " ")
}

// testSource emits one event per Open, then waits; openErr makes Open fail.
type testSource struct {
	j       *journal
	openErr error
	rule    string
}

func (s *testSource) Configure(ds string, props map[string]any) error {
	s.j.add("configure:" + ds)
	if props["fail"] == true {
		return errors.New("refused")
	}
	return nil
}

func (s *testSource) Open(ctx sdk.StreamContext, emit sdk.Emit) error {
	s.rule = ctx.RuleID()
	s.j.add("open:" + ctx.Symbol())
	if s.openErr != nil {
		return s.openErr
	}
	if err := emit(sdk.Event{Fields: map[string]any{"n": int64(1)}}, sdk.Event{Fields: map[string]any{"n": int64(2)}}); err != nil {
		return err
	}
	_ = emit() // nothing to send
	<-ctx.Done()
	return ctx.Err()
}

func (s *testSource) Close(ctx sdk.StreamContext) error {
	if ctx.Err() != nil {
		s.j.add("close-with-a-done-context")
	}
	s.j.add("close")
	s.j.closed <- "source"
	return nil
}

// testSink fails or panics on demand, per event field.
type testSink struct {
	j          *journal
	slowClose  time.Duration
	collected  int
	closeCalls int
}

func (s *testSink) Configure(map[string]any) error { return nil }
func (s *testSink) Open(sdk.StreamContext) error   { s.j.add("sink-open"); return nil }
func (s *testSink) Collect(_ sdk.StreamContext, events []sdk.Event) error {
	for _, e := range events {
		switch e.Fields["do"] {
		case "fail":
			return errors.New("disk full")
		case "panic":
			panic("sink bug")
		}
	}
	s.collected += len(events)
	return nil
}

func (s *testSink) Close(sdk.StreamContext) error {
	time.Sleep(s.slowClose)
	s.j.add("sink-close")
	s.j.closed <- "sink"
	return nil
}

type statusFunction struct{}

func (statusFunction) Validate(args []any) error {
	return status.Error(codes.FailedPrecondition, "not today")
}
func (statusFunction) Exec(sdk.FunctionContext, []any) (any, error) { return nil, nil }
func (statusFunction) IsAggregate() bool                            { return false }

type badResult struct{}

func (badResult) Validate([]any) error { return nil }
func (badResult) Exec(_ sdk.FunctionContext, args []any) (any, error) {
	if args[0] == "chan" {
		return make(chan int), nil
	}
	return args, nil
}
func (badResult) IsAggregate() bool { return false }

func testPlugin(j *journal, slowClose time.Duration) *sdk.Plugin {
	return &sdk.Plugin{
		Name: "lifecycle", Version: "0.1.0",
		Functions: []sdk.FunctionDef{
			{Name: "t_status", Function: statusFunction{}},
			{Name: "t_result", Function: badResult{}},
		},
		Sources: []sdk.SourceDef{
			{Name: "t_source", New: func() sdk.Source { return &testSource{j: j} }},
			{Name: "t_broken", New: func() sdk.Source { return &testSource{j: j, openErr: errors.New("no broker")} }},
			{Name: "t_status", New: func() sdk.Source {
				return &testSource{j: j, openErr: status.Error(codes.ResourceExhausted, "quota")}
			}},
		},
		Sinks: []sdk.SinkDef{{Name: "t_sink", New: func() sdk.Sink { return &testSink{j: j, slowClose: slowClose} }}},
	}
}

func waitClosed(t *testing.T, j *journal, what string) {
	t.Helper()
	select {
	case got := <-j.closed:
		if got != what {
			t.Fatalf("closed %s, want %s", got, what)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s not closed; journal: %s", what, j)
	}
}

func TestSourceLifecycle(t *testing.T) {
	j := newJournal()
	h := sdktest.Start(t, testPlugin(j, 0))

	events, err := h.ReadSource("t_source", "ds1", nil, 2, 5*time.Second)
	if err != nil || len(events) != 2 || events[1].Fields["n"] != int64(2) {
		t.Fatalf("events %v %v", events, err)
	}
	waitClosed(t, j, "source") // ReadSource ended the stream
	if got := j.String(); got != "configure:ds1 open:t_source close" {
		t.Fatalf("journal %q", got)
	}

	_, err = h.ReadSource("t_source", "", map[string]any{"fail": true}, 1, 5*time.Second)
	wantCode(t, err, codes.InvalidArgument, "t_source configuration: refused")

	_, err = h.ReadSource("t_broken", "", nil, 1, 5*time.Second)
	wantCode(t, err, codes.Unavailable, "t_broken: no broker")
	waitClosed(t, j, "source") // closed after a failed Open too

	_, err = h.ReadSource("t_status", "", nil, 1, 5*time.Second)
	wantCode(t, err, codes.ResourceExhausted, "quota") // the status the error carries
	waitClosed(t, j, "source")
}

func TestSinkErrors(t *testing.T) {
	j := newJournal()
	h := sdktest.Start(t, testPlugin(j, 0))
	ev := func(do string) []sdk.Event { return []sdk.Event{{Fields: map[string]any{"do": do}}} }
	acks, err := h.WriteSink("t_sink", nil, ev("ok"), ev("fail"), ev("panic"), ev("ok"))
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 4 || acks[0] != "" || acks[1] != "disk full" || !strings.Contains(acks[2], "panic in t_sink Collect: sink bug") || acks[3] != "" {
		t.Fatalf("acks %q", acks)
	}
	waitClosed(t, j, "sink")
}

func TestInvokeErrors(t *testing.T) {
	h := sdktest.Start(t, testPlugin(newJournal(), 0))
	_, err := h.CallN("t_status", 1)
	wantCode(t, err, codes.InvalidArgument, "t_status with 1 arguments: not today") // the protocol's code, whatever the error

	results, err := h.Call("t_result", []any{"chan"}, []any{"ok"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(results[0].Err, "t_result returned chan int") {
		t.Errorf("row 0: %+v", results[0])
	}
	if list, ok := results[1].Value.([]any); !ok || list[0] != "ok" {
		t.Errorf("row 1: %+v", results[1])
	}

	// A batch before the open, and an open after the open.
	stream, err := h.Client.Invoke(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: &pluginv1.InvokeBatch{}}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.InvalidArgument, "first InvokeRequest must be an InvokeOpen")
}

func TestShutdownClosesInstances(t *testing.T) {
	j := newJournal()
	h := sdktest.Start(t, testPlugin(j, 0))
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()

	source, err := h.Client.OpenSource(ctx, &pluginv1.OpenSourceRequest{Source: "t_source"})
	if err != nil {
		t.Fatal(err)
	}
	sourceAck, err := source.Recv()
	checkSourceAck(t, sourceAck, err)
	if _, err := source.Recv(); err != nil {
		t.Fatal(err)
	}
	sink, err := h.Client.OpenSink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Open{Open: &pluginv1.SinkOpen{Sink: "t_sink"}}}); err != nil {
		t.Fatal(err)
	}
	// The sink is open once the open is acknowledged.
	sinkAck, err := sink.Recv()
	checkSinkAck(t, sinkAck, err)
	if got := j.String(); !strings.Contains(got, "sink-open") {
		t.Fatalf("acknowledged before Open: %q", got)
	}
	if err := sink.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Batch{Batch: &pluginv1.SinkBatch{BatchId: 1}}}); err != nil {
		t.Fatal(err)
	}
	if ack, err := sink.Recv(); err != nil || ack.BatchId != 1 {
		t.Fatalf("ack %v %v", ack, err)
	}

	if _, err := h.Client.Shutdown(ctx, &pluginv1.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	// Both closed before Shutdown answered.
	got := j.String()
	if !strings.Contains(got, "sink-close") || !strings.Contains(got, " close") {
		t.Fatalf("after Shutdown: %q", got)
	}
	if _, err := sink.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("sink stream: %v", err)
	}
	for {
		if _, err := source.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("source stream: %v", err)
			}
			break
		}
	}
}

func TestShutdownGraceBoundsSlowClose(t *testing.T) {
	j := newJournal()
	// sdktest sets a grace of 2 s; this Close takes 4 s.
	h := sdktest.Start(t, testPlugin(j, 4*time.Second))
	ctx := testContext(t)
	sink, err := h.Client.OpenSink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Open{Open: &pluginv1.SinkOpen{Sink: "t_sink"}}}); err != nil {
		t.Fatal(err)
	}
	sinkAck, err := sink.Recv()
	checkSinkAck(t, sinkAck, err)
	if err := sink.Send(&pluginv1.OpenSinkRequest{Message: &pluginv1.OpenSinkRequest_Batch{Batch: &pluginv1.SinkBatch{BatchId: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := h.Client.Shutdown(ctx, &pluginv1.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 1900*time.Millisecond || elapsed > 3500*time.Millisecond {
		t.Fatalf("Shutdown took %v, want the 2 s grace", elapsed)
	}
	waitClosed(t, j, "sink") // it still finishes closing
}
