package sdk_test

// Helpers that build plugins/examples/godemo and start it the way oortd does:
// the start-up variables, a private directory for the socket, stdin a pipe the
// test holds, the handshake line read with a time limit.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	sdk "github.com/oort-edge/oort/plugins/go"
)

const (
	handshakeTimeout = 10 * time.Second
	exitTimeout      = 10 * time.Second
)

var (
	buildMu sync.Mutex
	builds  = map[string]string{} // package folder → executable
)

// build builds a plugin's main package (once per test binary) with
// CGO_ENABLED=0, as package.sh does, and returns the executable's path.
func build(t testing.TB, dir string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if exe, ok := builds[dir]; ok {
		return exe
	}
	out, err := os.MkdirTemp("", "oort-plugin-build")
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(out, filepath.Base(dir))
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, output)
	}
	builds[dir] = exe
	return exe
}

// TestMain removes the executables built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, exe := range builds {
		os.RemoveAll(filepath.Dir(exe))
	}
	os.Exit(code)
}

// godemo is the example plugin's executable.
func godemo(t testing.TB) string {
	return build(t, filepath.Join("..", "examples", "godemo"))
}

// pluginProcess is one running plugin.
type pluginProcess struct {
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	stdout *bufio.Reader
	stderr *syncBuffer
	socket string
	conn   *grpc.ClientConn
	client pluginv1.PluginServiceClient
	exited chan struct{}
	err    error // of cmd.Wait, once exited is closed
}

// syncBuffer collects stderr while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serverEnv is the environment oortd gives a plugin, for a socket path.
func serverEnv(socket string) map[string]string {
	return map[string]string{
		sdk.EnvMagicCookie:   sdk.MagicCookie,
		sdk.EnvProtocol:      "1",
		sdk.EnvSocket:        socket,
		sdk.EnvShutdownGrace: "2000",
	}
}

// privateSocket makes a directory only we can enter (as oortd does) and returns
// a socket path in it. os.MkdirTemp keeps it short: a socket path has a limit
// of about 100 bytes, which t.TempDir's can exceed.
func privateSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "oortp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "plugin.sock")
}

// spawn starts the executable with exactly env (plus PATH and HOME), stdin and
// stdout pipes, without waiting for the handshake.
func spawn(t testing.TB, exe string, env map[string]string) *pluginProcess {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// An os.Pipe rather than StdoutPipe: Wait does not close it, so stdout can
	// still be read to its end after the process has exited.
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdoutR.Close() }) // runs last, after the process is gone
	cmd.Stdout = stdoutW
	p := &pluginProcess{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdoutR), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	err = cmd.Start()
	stdoutW.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.conn != nil {
			p.conn.Close()
		}
		p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(exitTimeout):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("plugin stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// startGodemo starts the example as oortd would and connects to it.
func startGodemo(t testing.TB) *pluginProcess {
	t.Helper()
	return start(t, godemo(t))
}

// start starts a plugin executable as oortd would and connects to it.
func start(t testing.TB, exe string) *pluginProcess {
	t.Helper()
	socket := privateSocket(t)
	p := spawn(t, exe, serverEnv(socket))
	line, err := p.readLine(handshakeTimeout)
	if err != nil {
		t.Fatalf("no handshake line: %v; stderr:\n%s", err, p.stderr.String())
	}
	want := "OORT_PLUGIN|1|unix|" + socket
	if line != want {
		t.Fatalf("handshake line %q, want %q", line, want)
	}
	p.socket = socket
	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p.conn = conn
	p.client = pluginv1.NewPluginServiceClient(conn)
	return p
}

// readLine reads one line of stdout, waiting at most timeout.
func (p *pluginProcess) readLine(timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := p.stdout.ReadString('\n')
		done <- result{strings.TrimSuffix(line, "\n"), err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return r.line, r.err
		}
		return r.line, nil
	case <-time.After(timeout):
		return "", errors.New("timed out")
	}
}

// waitExit waits for the process to end and returns its exit code.
func (p *pluginProcess) waitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("the plugin did not exit within %v", timeout)
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		return exitErr.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
