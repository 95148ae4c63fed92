package sdk_test

// Throughput of a trivial function over the Unix socket, in batches of 1024
// rows, as the server calls it:
//
//	go test -run '^$' -bench Invoke -benchtime 3s
//
// BenchmarkInvokeInProcess serves the plugin with sdk.Run in the test process
// (client and plugin share the machine's cores, as oortd and a plugin do);
// BenchmarkInvokeGodemo starts the godemo executable and calls go_reverse.

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
	sdk "github.com/oort-edge/oort/plugins/go"
)

const benchBatch = 1024

type identity struct{}

func (identity) Validate([]any) error                                { return nil }
func (identity) Exec(_ sdk.FunctionContext, args []any) (any, error) { return args[0], nil }
func (identity) IsAggregate() bool                                   { return false }

// serveInProcess runs a plugin with sdk.Run on a private socket and returns a
// client; the plugin stops when the benchmark ends.
func serveInProcess(b *testing.B, p *sdk.Plugin) pluginv1.PluginServiceClient {
	b.Helper()
	socket := privateSocket(b)
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	env := serverEnv(socket)
	go func() {
		done <- sdk.Run(ctx, p, sdk.Options{Getenv: func(k string) string { return env[k] }, Stdout: stdoutW})
		stdoutW.Close()
	}()
	line := make([]byte, 4096)
	n, err := stdoutR.Read(line)
	if err != nil || !strings.HasPrefix(string(line[:n]), "OORT_PLUGIN|1|unix|") {
		b.Fatalf("handshake %q %v", line[:n], err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.Error(err)
			}
		case <-time.After(5 * time.Second):
			b.Error("the plugin did not stop")
		}
	})
	return pluginv1.NewPluginServiceClient(conn)
}

// benchInvoke sends b.N/1024 batches (at least one) on one Invoke stream, one
// batch in flight at a time, and reports rows per second.
func benchInvoke(b *testing.B, client pluginv1.PluginServiceClient, function string, arg any) {
	stream, err := client.Invoke(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Open{Open: &pluginv1.InvokeOpen{
		Function: function, RuleId: "bench", ArgCount: 1}}}); err != nil {
		b.Fatal(err)
	}
	ack, err := stream.Recv()
	checkInvokeAck(b, ack, err)
	rowsOf := make([]*pluginv1.ArgRow, benchBatch)
	for i := range rowsOf {
		rowsOf[i] = &pluginv1.ArgRow{Args: []*oortv1.Value{value(b, arg)}}
	}
	batches := max(1, b.N/benchBatch)
	b.ResetTimer()
	start := time.Now()
	for i := range batches {
		req := &pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: &pluginv1.InvokeBatch{
			BatchId: uint64(i + 1), Rows: rowsOf}}}
		if err := stream.Send(req); err != nil {
			b.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Results) != benchBatch || resp.Results[0].GetError() != "" {
			b.Fatalf("response %d: %d results, first %v", i, len(resp.Results), resp.Results[0])
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(batches*benchBatch)/elapsed.Seconds(), "rows/s")
	_ = stream.CloseSend()
}

func BenchmarkInvokeInProcess(b *testing.B) {
	client := serveInProcess(b, &sdk.Plugin{Name: "bench", Version: "1",
		Functions: []sdk.FunctionDef{{Name: "identity", Function: identity{}}}})
	benchInvoke(b, client, "identity", int64(42))
}

func BenchmarkInvokeGodemo(b *testing.B) {
	p := startGodemo(b)
	before, ok := cpuTime(p.cmd.Process.Pid)
	benchInvoke(b, p.client, "go_reverse", "abc")
	after, ok2 := cpuTime(p.cmd.Process.Pid)
	if ok && ok2 && after > before {
		// Rows per second of the plugin's own CPU time: what one core of the
		// plugin sustains, whatever the client costs.
		rows := max(1, b.N/benchBatch) * benchBatch
		b.ReportMetric(float64(rows)/(after-before).Seconds(), "rows/plugin-cpu-s")
	}
}

// cpuTime reads a process's user+system CPU time from /proc (Linux).
func cpuTime(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, true
}

// BenchmarkInvokeOneRow is the round trip of one unbatched call: a batch of
// one row, answered before the next is sent. It reports the median.
func BenchmarkInvokeOneRow(b *testing.B) {
	client := serveInProcess(b, &sdk.Plugin{Name: "bench", Version: "1",
		Functions: []sdk.FunctionDef{{Name: "identity", Function: identity{}}}})
	stream, err := client.Invoke(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Open{Open: &pluginv1.InvokeOpen{
		Function: "identity", ArgCount: 1}}}); err != nil {
		b.Fatal(err)
	}
	ack, err := stream.Recv()
	checkInvokeAck(b, ack, err)
	row := []*pluginv1.ArgRow{{Args: []*oortv1.Value{value(b, int64(1))}}}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := stream.Send(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: &pluginv1.InvokeBatch{
			BatchId: uint64(i + 1), Rows: row}}}); err != nil {
			b.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
	_ = stream.CloseSend()
}
