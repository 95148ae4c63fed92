package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

// service implements oort.plugin.v1.PluginService over a Plugin.
type service struct {
	pluginv1.UnimplementedPluginServiceServer

	plugin    *Plugin
	logger    *slog.Logger
	grace     time.Duration
	functions map[string]FunctionDef
	sources   map[string]SourceDef
	sinks     map[string]SinkDef

	// ctx ends when the plugin stops; every stream watches it.
	ctx       context.Context
	cancel    context.CancelFunc
	instances *instances

	shutdownOnce      sync.Once
	shutdownRequested chan struct{}
	stopOnce          sync.Once
}

func newService(p *Plugin, logger *slog.Logger, grace time.Duration) *service {
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{
		plugin:            p,
		logger:            logger,
		grace:             grace,
		functions:         map[string]FunctionDef{},
		sources:           map[string]SourceDef{},
		sinks:             map[string]SinkDef{},
		ctx:               ctx,
		cancel:            cancel,
		instances:         newInstances(),
		shutdownRequested: make(chan struct{}),
	}
	for _, f := range p.Functions {
		s.functions[f.Name] = f
	}
	for _, src := range p.Sources {
		s.sources[src.Name] = src
	}
	for _, sink := range p.Sinks {
		s.sinks[sink.Name] = sink
	}
	return s
}

// stop ends every stream and waits, at most the grace period, for the source
// and sink instances to close.
func (s *service) stop(reason string) {
	s.stopOnce.Do(func() {
		s.cancel()
		if left := s.instances.wait(s.grace); left > 0 {
			s.logger.Warn("instances still open after the grace period", "open", left, "grace", s.grace, "reason", reason)
		}
	})
}

var errStopping = status.Error(codes.Unavailable, "the plugin is shutting down")

// streamContext is the Context of one stream: it ends with the gRPC stream or
// when the plugin stops.
type streamContext struct {
	context.Context
	rule, symbol string
	logger       *slog.Logger
}

func (c *streamContext) RuleID() string       { return c.rule }
func (c *streamContext) Symbol() string       { return c.symbol }
func (c *streamContext) Logger() *slog.Logger { return c.logger }

func (s *service) newContext(stream context.Context, rule, symbol string) (*streamContext, context.CancelFunc) {
	ctx, cancel := context.WithCancel(stream)
	unwatch := context.AfterFunc(s.ctx, cancel)
	return &streamContext{
			Context: ctx,
			rule:    rule,
			symbol:  symbol,
			logger:  s.logger.With("rule", rule, "symbol", symbol),
		}, func() {
			unwatch()
			cancel()
		}
}

// closeContext is what Close receives: not cancelled (the stream is over by
// then), but bounded by the grace period.
func (s *service) closeContext(c *streamContext) (*streamContext, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), s.grace)
	return &streamContext{Context: ctx, rule: c.rule, symbol: c.symbol, logger: c.logger}, cancel
}

// endStatus is how a stream ends once its context is done.
func (s *service) endStatus(ctx context.Context) error {
	if s.ctx.Err() != nil {
		return errStopping
	}
	return status.FromContextError(ctx.Err()).Err()
}

// asStatus keeps a gRPC status an error already carries, or gives it code.
func asStatus(err error, code codes.Code, format string, args ...any) error {
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		return st.GRPCStatus().Err()
	}
	return status.Errorf(code, "%s: %v", fmt.Sprintf(format, args...), err)
}

// invalid is the INVALID_ARGUMENT status the protocol asks for when Validate
// or Configure refuses, whatever the error (a gRPC status's message is kept).
func invalid(err error, format string, args ...any) error {
	msg := err.Error()
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		msg = st.GRPCStatus().Message()
	}
	return status.Errorf(codes.InvalidArgument, "%s: %s", fmt.Sprintf(format, args...), msg)
}

// guard runs f and turns a panic into an error carrying its message; the stack
// goes to the log.
func guard(logger *slog.Logger, what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			logger.Error("panic", "in", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic in %s: %v", what, r)
		}
	}()
	return f()
}

// Describe lists the plugin's symbols.
func (s *service) Describe(context.Context, *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	resp := &pluginv1.DescribeResponse{
		Name:            s.plugin.Name,
		Version:         s.plugin.Version,
		ProtocolVersion: ProtocolVersion,
	}
	for _, f := range s.plugin.Functions {
		resp.Symbols = append(resp.Symbols, &pluginv1.Symbol{
			Name: f.Name, Kind: pluginv1.SymbolKind_SYMBOL_KIND_FUNCTION,
			Aggregate: isAggregate(f.Function), Description: f.Description,
		})
	}
	for _, src := range s.plugin.Sources {
		resp.Symbols = append(resp.Symbols, &pluginv1.Symbol{
			Name: src.Name, Kind: pluginv1.SymbolKind_SYMBOL_KIND_SOURCE, Description: src.Description,
		})
	}
	for _, sink := range s.plugin.Sinks {
		resp.Symbols = append(resp.Symbols, &pluginv1.Symbol{
			Name: sink.Name, Kind: pluginv1.SymbolKind_SYMBOL_KIND_SINK, Description: sink.Description,
		})
	}
	return resp, nil
}

func isAggregate(f Function) (aggregate bool) {
	defer func() { _ = recover() }()
	return f.IsAggregate()
}

// Shutdown closes every instance, answers, and makes Serve return.
func (s *service) Shutdown(context.Context, *pluginv1.ShutdownRequest) (*pluginv1.ShutdownResponse, error) {
	s.stop("Shutdown requested")
	s.shutdownOnce.Do(func() { close(s.shutdownRequested) })
	return &pluginv1.ShutdownResponse{}, nil
}

// receive reads a stream's requests on a goroutine of its own, so the handler
// can also watch its context (a blocked Recv cannot), and so the next batch
// is decoded while this one is processed.
func receive[T any](ctx context.Context, recv func() (*T, error)) <-chan received[T] {
	out := make(chan received[T], 1)
	go func() {
		defer close(out)
		for {
			msg, err := recv()
			select {
			case out <- received[T]{msg, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

type received[T any] struct {
	msg *T
	err error
}

// Invoke calls one function in batches.
func (s *service) Invoke(stream pluginv1.PluginService_InvokeServer) error {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return status.Error(codes.InvalidArgument, "the first InvokeRequest must be an InvokeOpen")
	}
	def, ok := s.functions[open.GetFunction()]
	if !ok {
		return status.Errorf(codes.NotFound, "plugin %q has no function %q", s.plugin.Name, open.GetFunction())
	}
	ctx, cancel := s.newContext(stream.Context(), open.GetRuleId(), def.Name)
	defer cancel()
	argCount := int(open.GetArgCount())
	if err := guard(ctx.logger, def.Name+" Validate", func() error {
		return def.Function.Validate(make([]any, argCount))
	}); err != nil {
		return invalid(err, "%s with %d arguments", def.Name, argCount)
	}
	inv := invocation{ctx: ctx, fn: def.Function, name: def.Name, argCount: argCount}
	// The acknowledgement of the open (batch 0, no results): the server waits
	// for it before it sends batches. The batches are numbered from 1.
	if err := stream.Send(&pluginv1.InvokeResponse{}); err != nil {
		return err
	}

	requests := receive(ctx, stream.Recv)
	for {
		var req received[pluginv1.InvokeRequest]
		select {
		case <-ctx.Done():
			return s.endStatus(ctx)
		case req = <-requests:
		}
		if errors.Is(req.err, io.EOF) {
			return nil
		}
		if req.err != nil {
			return req.err
		}
		batch := req.msg.GetBatch()
		if batch == nil {
			return status.Error(codes.InvalidArgument, "an InvokeRequest after the first must be an InvokeBatch")
		}
		if err := stream.Send(inv.batch(batch)); err != nil {
			return err
		}
	}
}

// invocation is one Invoke stream's function.
type invocation struct {
	ctx      *streamContext
	fn       Function
	name     string
	argCount int
	panicked bool
}

func (inv *invocation) batch(batch *pluginv1.InvokeBatch) *pluginv1.InvokeResponse {
	rows := batch.GetRows()
	results := make([]pluginv1.CallResult, len(rows))
	resp := &pluginv1.InvokeResponse{BatchId: batch.GetBatchId(), Results: make([]*pluginv1.CallResult, len(rows))}
	// One backing array for the batch's arguments: each row's slice stays valid
	// after the call, since no other row or batch reuses it.
	args := make([]any, 0, len(rows)*inv.argCount)
	for i, row := range rows {
		values := row.GetArgs()
		result := &results[i]
		resp.Results[i] = result
		if len(values) != inv.argCount {
			result.Result = &pluginv1.CallResult_Error{Error: fmt.Sprintf(
				"%s: the row has %d arguments, the stream was opened with %d", inv.name, len(values), inv.argCount)}
			continue
		}
		start := len(args)
		for _, v := range values {
			args = append(args, FromValue(v))
		}
		out, err := inv.exec(args[start:len(args):len(args)])
		if err == nil {
			var value *oortv1.Value
			if value, err = ToValue(out); err == nil {
				result.Result = &pluginv1.CallResult_Value{Value: value}
				continue
			}
			err = fmt.Errorf("%s returned %T: %w", inv.name, out, err)
		}
		msg := err.Error()
		if msg == "" {
			msg = inv.name + " failed without a message"
		}
		result.Result = &pluginv1.CallResult_Error{Error: msg}
	}
	return resp
}

// exec calls the function, turning a panic into this row's error. The first
// panic of a stream is logged with its stack; later ones only count as errors.
func (inv *invocation) exec(args []any) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			if !inv.panicked {
				inv.panicked = true
				inv.ctx.logger.Error("function panicked (later panics of this stream are not logged)",
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
			out, err = nil, fmt.Errorf("%s panicked: %v", inv.name, r)
		}
	}()
	return inv.fn.Exec(inv.ctx, args)
}

// OpenSource opens one source instance and streams its events.
func (s *service) OpenSource(req *pluginv1.OpenSourceRequest, stream pluginv1.PluginService_OpenSourceServer) error {
	def, ok := s.sources[req.GetSource()]
	if !ok {
		return status.Errorf(codes.NotFound, "plugin %q has no source %q", s.plugin.Name, req.GetSource())
	}
	ctx, cancel := s.newContext(stream.Context(), req.GetRuleId(), def.Name)
	defer cancel()
	var src Source
	if err := guard(ctx.logger, def.Name+" New", func() error {
		if src = def.New(); src == nil {
			return errors.New("the factory returned nil")
		}
		return nil
	}); err != nil {
		return status.Errorf(codes.Internal, "%s: %v", def.Name, err)
	}
	if err := guard(ctx.logger, def.Name+" Configure", func() error {
		return src.Configure(req.GetDatasource(), configMap(req.GetConfig()))
	}); err != nil {
		return invalid(err, "%s configuration", def.Name)
	}
	if !s.instances.add() {
		return errStopping
	}
	defer s.instances.done()
	// The acknowledgement of the open (no events), before the source produces:
	// the server waits for it before it reads events. If it cannot be sent,
	// Open is not called (nor Close, which follows Open).
	if err := stream.Send(&pluginv1.OpenSourceResponse{}); err != nil {
		return err
	}

	// emit may be called from goroutines of the source, also after Open has
	// returned: the lock orders the sends and ended refuses them once the
	// handler is done with the stream.
	var mu sync.Mutex
	ended := false
	emit := func(events ...Event) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		resp := &pluginv1.OpenSourceResponse{Events: make([]*oortv1.Event, len(events))}
		for i, e := range events {
			converted, err := ToEvent(e)
			if err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
			resp.Events[i] = converted
		}
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return context.Canceled
		}
		return stream.Send(resp)
	}

	openErr := guard(ctx.logger, def.Name+" Open", func() error { return src.Open(ctx, emit) })
	if openErr == nil && ctx.Err() == nil {
		<-ctx.Done() // a finite source: the stream stays open until the server ends it
	}
	mu.Lock()
	ended = true
	mu.Unlock()
	cancel()
	closeCtx, closeCancel := s.closeContext(ctx)
	defer closeCancel()
	if err := guard(ctx.logger, def.Name+" Close", func() error { return src.Close(closeCtx) }); err != nil {
		ctx.logger.Warn("close failed", "error", err)
	}
	if openErr != nil && !errors.Is(openErr, context.Canceled) {
		if s.ctx.Err() != nil {
			return errStopping
		}
		return asStatus(openErr, codes.Unavailable, "%s", def.Name)
	}
	return s.endStatus(ctx)
}

// OpenSink opens one sink instance and acknowledges each batch it writes.
func (s *service) OpenSink(stream pluginv1.PluginService_OpenSinkServer) error {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return status.Error(codes.InvalidArgument, "the first OpenSinkRequest must be a SinkOpen")
	}
	def, ok := s.sinks[open.GetSink()]
	if !ok {
		return status.Errorf(codes.NotFound, "plugin %q has no sink %q", s.plugin.Name, open.GetSink())
	}
	ctx, cancel := s.newContext(stream.Context(), open.GetRuleId(), def.Name)
	defer cancel()
	var sink Sink
	if err := guard(ctx.logger, def.Name+" New", func() error {
		if sink = def.New(); sink == nil {
			return errors.New("the factory returned nil")
		}
		return nil
	}); err != nil {
		return status.Errorf(codes.Internal, "%s: %v", def.Name, err)
	}
	if err := guard(ctx.logger, def.Name+" Configure", func() error {
		return sink.Configure(configMap(open.GetConfig()))
	}); err != nil {
		return invalid(err, "%s configuration", def.Name)
	}
	if !s.instances.add() {
		return errStopping
	}
	defer s.instances.done()
	if err := guard(ctx.logger, def.Name+" Open", func() error { return sink.Open(ctx) }); err != nil {
		return asStatus(err, codes.Unavailable, "%s open", def.Name)
	}
	defer func() {
		closeCtx, closeCancel := s.closeContext(ctx)
		defer closeCancel()
		if err := guard(ctx.logger, def.Name+" Close", func() error { return sink.Close(closeCtx) }); err != nil {
			ctx.logger.Warn("close failed", "error", err)
		}
	}()
	// The acknowledgement of the open (batch 0): the server waits for it
	// before it sends batches. The batches are numbered from 1.
	if err := stream.Send(&pluginv1.OpenSinkResponse{}); err != nil {
		return err
	}

	requests := receive(ctx, stream.Recv)
	for {
		var req received[pluginv1.OpenSinkRequest]
		select {
		case <-ctx.Done():
			return s.endStatus(ctx)
		case req = <-requests:
		}
		if errors.Is(req.err, io.EOF) {
			return nil
		}
		if req.err != nil {
			return req.err
		}
		batch := req.msg.GetBatch()
		if batch == nil {
			return status.Error(codes.InvalidArgument, "an OpenSinkRequest after the first must be a SinkBatch")
		}
		events := make([]Event, len(batch.GetEvents()))
		for i, e := range batch.GetEvents() {
			events[i] = FromEvent(e)
		}
		ack := &pluginv1.OpenSinkResponse{BatchId: batch.GetBatchId()}
		if err := guard(ctx.logger, def.Name+" Collect", func() error { return sink.Collect(ctx, events) }); err != nil {
			ack.Error = err.Error()
			if ack.Error == "" {
				ack.Error = "the sink failed without a message"
			}
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}
