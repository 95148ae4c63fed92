package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
)

// The start-up contract with oortd (see proto/oort/plugin/v1/plugin.proto).
const (
	// ProtocolVersion is the version of oort.plugin.v1 this SDK speaks.
	ProtocolVersion = 1
	// MagicCookie is the value of OORT_PLUGIN_MAGIC_COOKIE set by oortd.
	MagicCookie = "oort-plugin-7c2b1d9e"

	EnvMagicCookie   = "OORT_PLUGIN_MAGIC_COOKIE"
	EnvProtocol      = "OORT_PLUGIN_PROTOCOL"
	EnvSocket        = "OORT_PLUGIN_SOCKET"
	EnvShutdownGrace = "OORT_PLUGIN_SHUTDOWN_GRACE_MS"

	// DefaultShutdownGrace is used when OORT_PLUGIN_SHUTDOWN_GRACE_MS is unset.
	DefaultShutdownGrace = 5 * time.Second
	// maxMessageSize bounds one gRPC message (a batch) in both directions.
	maxMessageSize = 64 << 20
)

// Serve serves the plugin the way oortd expects, and returns when the plugin
// should exit: after the Shutdown RPC, when stdin reaches end of file (the
// server is gone), or on SIGTERM/SIGINT; every source and sink instance is
// closed first, within OORT_PLUGIN_SHUTDOWN_GRACE_MS. main should return after
// it. A plugin that cannot start (not run by oortd, another protocol version,
// a socket it cannot listen on, an invalid Plugin) explains why on stderr and
// exits with status 1.
//
// Serve prints exactly one line on stdout, the handshake; all logs go to stderr.
func Serve(p *Plugin) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := Run(ctx, p, Options{
		Getenv: os.Getenv,
		Stdin:  os.Stdin,
		Stdout: handshakeWriter{},
		Stderr: os.Stderr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", pluginLabel(p), err)
		os.Exit(1)
	}
}

// Options are what Run reads from its process; Serve passes the real ones.
type Options struct {
	// Getenv reads the start-up variables (os.Getenv).
	Getenv func(string) string
	// Stdin is watched for end of file; nil means never.
	Stdin io.Reader
	// Stdout receives the handshake line, in one Write (unbuffered).
	Stdout io.Writer
	// Stderr receives the logs.
	Stderr io.Writer
}

// Run is Serve without the process around it: it returns nil when the plugin
// should exit, or the error that keeps it from starting. ctx ending stops it
// like Shutdown does.
func Run(ctx context.Context, p *Plugin, opts Options) error {
	cfg, err := readEnv(opts.Getenv)
	if err != nil {
		return err
	}
	if opts.Stdout == nil {
		return errors.New("Options.Stdout is nil: the handshake line has nowhere to go")
	}
	if err := p.check(); err != nil {
		return err
	}
	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil)).With("plugin", p.Name)

	ln, err := listenUnix(cfg.socket)
	if err != nil {
		return err
	}
	defer ln.Close()

	grpcServer := grpc.NewServer(
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.MaxSendMsgSize(maxMessageSize),
		grpc.ForceServerCodecV2(newFastCodec()),
	)
	svc := newService(p, logger, cfg.grace)
	pluginv1.RegisterPluginServiceServer(grpcServer, svc)
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus(pluginv1.PluginService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(grpcServer, healthServer)

	served := make(chan error, 1)
	go func() { served <- grpcServer.Serve(ln) }()

	// The listener accepts from here on, so the server may connect as soon as
	// it reads the line.
	if _, err := fmt.Fprintf(opts.Stdout, "OORT_PLUGIN|%d|unix|%s\n", ProtocolVersion, cfg.socket); err != nil {
		grpcServer.Stop()
		return fmt.Errorf("cannot print the handshake line: %w", err)
	}
	// Written at once: os.Stdout has no buffer, and Options.Stdout must not either.
	logger.Info("serving", "version", p.Version, "socket", cfg.socket)

	stdinClosed := make(chan struct{})
	if opts.Stdin != nil {
		go func() {
			_, _ = io.Copy(io.Discard, opts.Stdin)
			close(stdinClosed)
		}()
	}

	var reason string
	select {
	case <-svc.shutdownRequested:
		reason = "Shutdown requested"
	case <-stdinClosed:
		reason = "stdin closed: the server is gone"
	case <-ctx.Done():
		reason = "context ended (SIGTERM or SIGINT under Serve)"
	case err := <-served:
		svc.stop("the gRPC server stopped")
		return fmt.Errorf("gRPC server stopped: %w", err)
	}
	logger.Info("stopping", "reason", reason)
	healthServer.Shutdown()
	svc.stop(reason)

	// Every handler returns once the service is stopped, so a graceful stop
	// only waits for the Shutdown response to be written; Stop is the backstop.
	stopped := make(chan struct{})
	go func() {
		grpcServer.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		grpcServer.Stop()
	}
	return nil
}

// handshakeWriter writes the handshake line to the real stdout, then sends
// whatever else goes to stdout to stderr.
type handshakeWriter struct{}

func (handshakeWriter) Write(p []byte) (int, error) {
	n, err := os.Stdout.Write(p)
	if err != nil {
		return n, err
	}
	if err := redirectStdout(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot send stdout to stderr after the handshake: %v\n", err)
	}
	return n, nil
}

type config struct {
	socket string
	grace  time.Duration
}

func readEnv(getenv func(string) string) (config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if getenv(EnvMagicCookie) != MagicCookie {
		return config{}, errors.New("this program is an Oort plugin: it is meant to be started by oortd, " +
			"which installs it from its package and runs it when a rule needs it; it does nothing on its own " +
			"(" + EnvMagicCookie + " is not set to the value oortd sets)")
	}
	if v := getenv(EnvProtocol); v != strconv.Itoa(ProtocolVersion) {
		return config{}, fmt.Errorf("the server speaks Oort plugin protocol %q (%s), this plugin speaks %d: "+
			"install a version of the plugin built for this server", v, EnvProtocol, ProtocolVersion)
	}
	cfg := config{socket: getenv(EnvSocket), grace: DefaultShutdownGrace}
	if cfg.socket == "" {
		return config{}, fmt.Errorf("%s is not set: the server did not say where to listen", EnvSocket)
	}
	if v := getenv(EnvShutdownGrace); v != "" {
		ms, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return config{}, fmt.Errorf("%s=%q is not a number of milliseconds", EnvShutdownGrace, v)
		}
		cfg.grace = time.Duration(ms) * time.Millisecond
	}
	return cfg, nil
}

// listenUnix listens on path with the socket mode 0600 from the start (umask),
// and chmods it again in case the platform ignores the umask for sockets.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path) // a stale socket of a previous process in the server's private directory
	}
	restore := restrictUmask()
	ln, err := net.Listen("unix", path)
	restore()
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot make %s mode 0600: %w", path, err)
	}
	return ln, nil
}

func pluginLabel(p *Plugin) string {
	if p == nil || p.Name == "" {
		return "oort plugin"
	}
	return p.Name
}

// check refuses a Plugin that Describe could not describe truthfully.
func (p *Plugin) check() error {
	if p == nil {
		return errors.New("Serve needs a *Plugin")
	}
	if p.Name == "" || p.Version == "" {
		return errors.New("the Plugin needs a Name and a Version (those of manifest.json)")
	}
	seen := map[string]bool{}
	add := func(kind, name string, missing bool) error {
		if name == "" {
			return fmt.Errorf("a %s has no name", kind)
		}
		if missing {
			return fmt.Errorf("%s %q has no implementation", kind, name)
		}
		key := kind + " " + name
		if seen[key] {
			return fmt.Errorf("%s %q is defined twice", kind, name)
		}
		seen[key] = true
		return nil
	}
	for _, f := range p.Functions {
		if err := add("function", f.Name, f.Function == nil); err != nil {
			return err
		}
	}
	for _, s := range p.Sources {
		if err := add("source", s.Name, s.New == nil); err != nil {
			return err
		}
	}
	for _, s := range p.Sinks {
		if err := add("sink", s.Name, s.New == nil); err != nil {
			return err
		}
	}
	return nil
}

// instances counts the open source and sink instances, so that stopping can
// wait for them to close.
type instances struct {
	mu      sync.Mutex
	open    int
	closing bool
	idle    chan struct{}
}

func newInstances() *instances { return &instances{idle: make(chan struct{})} }

// add registers an instance; false once the plugin is stopping.
func (in *instances) add() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closing {
		return false
	}
	in.open++
	return true
}

func (in *instances) done() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.open--
	if in.closing && in.open == 0 {
		close(in.idle)
	}
}

// wait refuses new instances and waits until the open ones are closed, at most
// grace; it returns how many were still open.
func (in *instances) wait(grace time.Duration) int {
	in.mu.Lock()
	if !in.closing {
		in.closing = true
		if in.open == 0 {
			close(in.idle)
		}
	}
	in.mu.Unlock()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-in.idle:
		return 0
	case <-timer.C:
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.open
	}
}
