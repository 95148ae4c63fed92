package oort_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	oort "github.com/oort-edge/oort/clients/go"
	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

const (
	streamSQL = `CREATE STREAM sensors (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="sensors")`
	ruleSQL   = `SELECT temperature * 1.8 + 32 AS f, deviceId FROM sensors WHERE temperature > 20`
)

// readyAddress is the API address of oortd's ready line (one JSON object on
// stdout, {"oortd": "ready", "api": ...}), or "" for any other line.
func readyAddress(line string) string {
	if !strings.HasPrefix(line, "{") {
		return ""
	}
	var ready struct {
		Oortd string `json:"oortd"`
		API   string `json:"api"`
	}
	if json.Unmarshal([]byte(line), &ready) != nil || ready.Oortd != "ready" {
		return ""
	}
	return ready.API
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// oortdBinary is $OORT_BIN, or <repo>/target/debug/oortd.
func oortdBinary(t *testing.T) string {
	if bin := os.Getenv("OORT_BIN"); bin != "" {
		return bin
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "target", "debug", "oortd")
}

// oortd is a running server: its address, its admin token, and with TLS the
// directory of the throwaway CA's files (ca.pem; server.pem and server.key;
// client.pem and client.key).
type oortd struct {
	addr, token, certs string
}

// serverTLS says whether a test server serves TLS, and whether it accepts
// client certificates signed by its CA.
type serverTLS int

const (
	plaintext serverTLS = iota
	serverTLSOnly
	mutualTLS
)

// scrubbed are the inherited variables that would change what the tests ask of
// the server or send it.
var scrubbed = []string{"OORT_LISTEN=", "OORT_DATA_DIR=", "RUST_LOG=", "OORT_AUTH_TOKEN=", "OORT_TOKEN=", "OORT_TLS_CERT=", "OORT_TLS_KEY=", "OORT_TLS_CLIENT_CA="}

// startOortd runs the real oortd on a free port with a temporary data
// directory and a fresh random admin token, waits for its ready line (JSON on
// stdout) and for health SERVING, and returns a client with the token.
// Both stop when the test ends.
func startOortd(t *testing.T) *oort.Client {
	t.Helper()
	client, _ := startServer(t, plaintext)
	return client
}

// startServer is startOortd with TLS or not; it returns the server too.
func startServer(t *testing.T, mode serverTLS) (*oort.Client, *oortd) {
	t.Helper()
	bin := oortdBinary(t)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no oortd at %s (build it, or set OORT_BIN): %v", bin, err)
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		t.Fatal(err)
	}
	server := &oortd{token: hex.EncodeToString(token)}
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--http-push-listen", "off"}
	if mode != plaintext {
		server.certs = makeCerts(t)
		args = append(args, "--tls-cert", filepath.Join(server.certs, "server.pem"), "--tls-key", filepath.Join(server.certs, "server.key"))
	}
	if mode == mutualTLS {
		args = append(args, "--tls-client-ca", filepath.Join(server.certs, "ca.pem"))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"RUST_LOG=info", "OORT_AUTH_TOKEN=" + server.token}
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(scrubbed, func(prefix string) bool { return strings.HasPrefix(kv, prefix) }) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addrs := make(chan string, 1)
	exited := make(chan string, 1) // gets the last lines once the output ends
	go func() {
		// Drains every line, so the server never blocks on a full pipe.
		var last []string
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			line := ansi.ReplaceAllString(scanner.Text(), "")
			if os.Getenv("OORT_TEST_LOG") != "" {
				t.Log("[oortd]", line)
			}
			if last = append(last, line); len(last) > 20 {
				last = last[1:]
			}
			if addr := readyAddress(line); addr != "" {
				select {
				case addrs <- addr:
				default:
				}
			}
		}
		exited <- strings.Join(last, "\n")
	}()
	select {
	case server.addr = <-addrs:
	case log := <-exited:
		t.Fatalf("oortd exited before listening:\n%s", log)
	case <-time.After(30 * time.Second):
		t.Fatal("oortd did not log the address it listens on")
	}
	client := server.dial(t)
	health := grpc_health_v1.NewHealthClient(client.Conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
		cancel()
		if err == nil && res.GetStatus() == grpc_health_v1.HealthCheckResponse_SERVING {
			return client, server
		}
		if time.Now().After(deadline) {
			t.Fatalf("oortd is not SERVING: %v %v", res, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dial returns a client of the server with its token (and CA), then opts; it
// is closed when the test ends.
func (s *oortd) dial(t *testing.T, opts ...grpc.DialOption) *oort.Client {
	t.Helper()
	opts = append([]grpc.DialOption{oort.WithToken(s.token)}, opts...)
	if s.certs != "" {
		opts = append([]grpc.DialOption{oort.WithTLS(filepath.Join(s.certs, "ca.pem"), "", "")}, opts...)
	}
	client, err := oort.Dial(s.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// makeCerts writes a throwaway CA (ca.pem), a certificate of the server for
// 127.0.0.1 and localhost (server.pem, server.key) and one of a client
// (client.pem, client.key), both signed by the CA, with the openssl CLI.
func makeCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	openssl := func(args ...string) {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"}
	openssl(append(append([]string{"req", "-x509"}, ec...), "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=oort-test-ca",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")...)
	for _, c := range []struct{ name, usage, san string }{
		{"server", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"},
		{"client", "clientAuth", ""},
	} {
		args := append(append([]string{"req", "-x509"}, ec...), "-CA", "ca.pem", "-CAkey", "ca.key",
			"-keyout", c.name+".key", "-out", c.name+".pem", "-subj", "/CN=oort-test-"+c.name,
			"-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage="+c.usage)
		if c.san != "" {
			args = append(args, "-addext", c.san)
		}
		openssl(args...)
	}
	return dir
}

func TestStreamRulePublishTail(t *testing.T) {
	c := startOortd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	stream, err := c.CreateStream(ctx, streamSQL)
	if err != nil {
		t.Fatal(err)
	}
	if stream.GetName() != "sensors" || stream.GetKind() != oortv1.StreamKind_STREAM_KIND_STREAM || len(stream.GetFields()) != 2 {
		t.Fatalf("unexpected stream %v", stream)
	}
	if got := stream.GetOptions()["TYPE"]; got != "grpc" {
		t.Fatalf("TYPE = %q", got)
	}

	rule, err := c.CreateRule(ctx, "hot", ruleSQL, "grpc")
	if err != nil {
		t.Fatal(err)
	}
	if rule.GetId() != "hot" || rule.GetActions()[0].GetType() != "grpc" {
		t.Fatalf("unexpected rule %v", rule)
	}
	list, err := c.Rules.ListRules(ctx, &oortv1.ListRulesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetRules()) != 1 || list.GetRules()[0].GetState() != oortv1.RuleState_RULE_STATE_RUNNING {
		t.Fatalf("unexpected rules %v", list)
	}

	tail, err := c.TailRule(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	type result struct {
		row map[string]any
		err error
	}
	results := make(chan result, 16)
	go func() {
		for {
			row, err := tail.Next()
			results <- result{row, err}
			if err != nil {
				return
			}
		}
	}()

	accepted, err := c.Publish(ctx, "sensors",
		map[string]any{"temperature": 25.0, "deviceId": "a"},
		map[string]any{"temperature": 10.0, "deviceId": "b"}, // not above 20
		map[string]any{"temperature": 30, "deviceId": "c"},   // an int for a FLOAT column is converted
		map[string]any{"temperature": 20.0, "deviceId": "d"}, // not above 20
		map[string]any{"temperature": 21.5, "deviceId": "e"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if accepted != 5 {
		t.Fatalf("accepted %d, want 5", accepted)
	}

	want := []struct {
		f      float64
		device string
	}{{77, "a"}, {86, "c"}, {70.7, "e"}}
	for i, w := range want {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("result %d: %v", i, r.err)
			}
			f, ok := r.row["f"].(float64)
			if !ok || math.Abs(f-w.f) > 1e-9 || r.row["deviceId"] != w.device || len(r.row) != 2 {
				t.Fatalf("result %d = %v, want f=%v deviceId=%v", i, r.row, w.f, w.device)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no result %d within 10 s", i)
		}
	}
	select {
	case r := <-results:
		t.Fatalf("unexpected extra result %v", r)
	case <-time.After(500 * time.Millisecond):
	}

	st, err := c.RuleStatus(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range st.GetOperators() {
		if op.GetName() == "op_filter_0" && (op.GetRecordsInTotal() != 5 || op.GetRecordsOutTotal() != 3) {
			t.Fatalf("filter counters %v", op)
		}
	}

	if _, err := c.Rules.StopRule(ctx, &oortv1.StopRuleRequest{Id: "hot"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-results:
		if !errors.Is(r.err, io.EOF) {
			t.Fatalf("after StopRule the tail should end with io.EOF, got %v %v", r.row, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tail did not end after StopRule")
	}
	if _, err := c.Rules.DeleteRule(ctx, &oortv1.DeleteRuleRequest{Id: "hot"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TailRule(ctx, "hot"); status.Code(err) != codes.NotFound {
		t.Fatalf("TailRule of a deleted rule = %v, want NotFound", err)
	}
	if err := c.DeleteStream(ctx, "sensors"); err != nil {
		t.Fatal(err)
	}
}

// tailCounter records, at the gRPC level, the TailRule requests a client sends
// and the responses it reads.
type tailCounter struct {
	maxBatch  []uint32
	responses int
}

func (c *tailCounter) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	stream, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || method != oortv1.RuleService_TailRule_FullMethodName {
		return stream, err
	}
	return countedStream{stream, c}, nil
}

type countedStream struct {
	grpc.ClientStream
	counter *tailCounter
}

func (s countedStream) SendMsg(m any) error {
	s.counter.maxBatch = append(s.counter.maxBatch, m.(*oortv1.TailRuleRequest).GetMaxBatch())
	return s.ClientStream.SendMsg(m)
}

func (s countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.counter.responses++
	}
	return err
}

func TestTailReadsBatchesOneRowAtATime(t *testing.T) {
	c, server := startServer(t, plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	counter := &tailCounter{}
	counted := server.dial(t, grpc.WithStreamInterceptor(counter.intercept))

	if _, err := c.CreateStream(ctx, `CREATE STREAM burst (n BIGINT) WITH (TYPE="grpc", DATASOURCE="burst")`); err != nil {
		t.Fatal(err)
	}
	// The window hands its 1,000 rows to the tail at once: they come in
	// ceil(1000 / TailBatch) responses, where an unbatched tail takes 1,000.
	if _, err := c.CreateRule(ctx, "burst", "SELECT n FROM burst GROUP BY COUNTWINDOW(1000)"); err != nil {
		t.Fatal(err)
	}
	tail, err := counted.TailRule(ctx, "burst")
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	const count = 1000
	rows := make([]map[string]any, count)
	for i := range rows {
		rows[i] = map[string]any{"n": i}
	}
	if accepted, err := c.Publish(ctx, "burst", rows...); err != nil || accepted != count {
		t.Fatalf("Publish = %d, %v", accepted, err)
	}
	for i := range count {
		row, err := tail.Next()
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		if row["n"] != int64(i) || len(row) != 1 {
			t.Fatalf("result %d = %v", i, row)
		}
	}
	if len(counter.maxBatch) != 1 || counter.maxBatch[0] != oort.TailBatch {
		t.Fatalf("TailRule requests asked for max_batch %v, want [%d]", counter.maxBatch, oort.TailBatch)
	}
	if want := (count + oort.TailBatch - 1) / oort.TailBatch; counter.responses != want {
		t.Fatalf("%d results came in %d responses, want %d", count, counter.responses, want)
	}
}

func TestErrorCodes(t *testing.T) {
	c := startOortd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := c.GetStream(ctx, "nope")
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "nope") {
		t.Fatalf("GetStream(nope) = %v, want NotFound naming it", err)
	}
	_, err = c.CreateStream(ctx, `CREATE STREAM bad (t FLAOT) WITH (DATASOURCE="x")`)
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, "line 1, column 22") || !strings.Contains(msg, "FLAOT") {
		t.Fatalf("bad DDL = %v, want InvalidArgument at line 1, column 22", err)
	}
	_, err = c.CreateRule(ctx, "r", "SELECT FROM WHERE", "log")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "line 1") {
		t.Fatalf("bad rule SQL = %v, want InvalidArgument with a position", err)
	}
	_, err = c.Publish(ctx, "absent", map[string]any{"x": 1})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Publish to a missing stream = %v, want NotFound", err)
	}
}

func TestValuesRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	in := map[string]any{
		"n": nil, "b": true, "i": int64(math.MinInt64), "f": 1.5, "s": "text", "t": at,
		"l": []any{int64(1), "a"}, "m": map[string]any{"x": false},
	}
	event, err := oort.ToEvent(in)
	if err != nil {
		t.Fatal(err)
	}
	out := oort.FromEvent(event)
	if out["n"] != nil || out["b"] != true || out["i"] != int64(math.MinInt64) || out["f"] != 1.5 || out["s"] != "text" ||
		!out["t"].(time.Time).Equal(at) || out["l"].([]any)[1] != "a" || out["m"].(map[string]any)["x"] != false {
		t.Fatalf("round trip: %v", out)
	}
	if v, _ := oort.ToValue(7); v.GetIntValue() != 7 {
		t.Fatalf("int: %v", v)
	}
	if _, err := oort.ToValue(struct{}{}); err == nil {
		t.Fatal("a struct should not convert")
	}
}

func TestWithoutTokenIsUnauthenticated(t *testing.T) {
	_, server := startServer(t, plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, token := range []string{"", strings.Repeat("0", 64)} {
		c := server.dial(t, oort.WithToken(token))
		_, err := c.Streams.ListStreams(ctx, &oortv1.ListStreamsRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("ListStreams with token %q = %v, want Unauthenticated", token, err)
		}
	}
}

func TestTokenDefaultsToOortToken(t *testing.T) {
	_, server := startServer(t, plaintext)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Setenv(oort.TokenEnv, server.token+"\n") // as read from a file: the newline goes
	c, err := oort.Dial(server.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Streams.ListStreams(ctx, &oortv1.ListStreamsRequest{}); err != nil {
		t.Fatalf("ListStreams with $OORT_TOKEN: %v", err)
	}
	none := server.dial(t, oort.WithToken("")) // "" sends none, whatever the environment says
	if _, err := none.Streams.ListStreams(ctx, &oortv1.ListStreamsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ListStreams with WithToken(\"\") = %v, want Unauthenticated", err)
	}
}

// checkStream creates a stream, reads it back and deletes it.
func checkStream(t *testing.T, c *oort.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sql := `CREATE STREAM ` + name + ` (temperature FLOAT, deviceId STRING) WITH (TYPE="grpc", DATASOURCE="` + name + `")`
	if created, err := c.CreateStream(ctx, sql); err != nil || created.GetName() != name {
		t.Fatalf("CreateStream = %v, %v", created, err)
	}
	got, err := c.GetStream(ctx, name)
	if err != nil || got.GetName() != name || got.GetKind() != oortv1.StreamKind_STREAM_KIND_STREAM || len(got.GetFields()) != 2 {
		t.Fatalf("GetStream = %v, %v", got, err)
	}
	if err := c.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	c, server := startServer(t, serverTLSOnly) // dialled WithTLS(ca.pem) and WithToken
	checkStream(t, c, "secure")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	none := server.dial(t, oort.WithToken(""))
	if _, err := none.Streams.ListStreams(ctx, &oortv1.ListStreamsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ListStreams over TLS without a token = %v, want Unauthenticated", err)
	}
	if _, err := oort.Dial(server.addr, oort.WithTLS(filepath.Join(server.certs, "absent.pem"), "", "")); err == nil {
		t.Fatal("Dial with a CA file that does not exist should fail")
	}
}

func TestMutualTLS(t *testing.T) {
	_, server := startServer(t, mutualTLS)
	c := server.dial(t, oort.WithTLS(filepath.Join(server.certs, "ca.pem"),
		filepath.Join(server.certs, "client.pem"), filepath.Join(server.certs, "client.key")))
	checkStream(t, c, "mutual")
}
