package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Context is what the SDK passes to every call of a function, source or sink:
// a context.Context that is cancelled when the server ends the stream (or the
// plugin shuts down), plus the rule and symbol it serves and a logger that
// writes to stderr, which the server copies into its log.
type Context interface {
	context.Context
	// RuleID is the id of the rule that opened the stream.
	RuleID() string
	// Symbol is the name of the function, source or sink.
	Symbol() string
	// Logger writes structured logs to stderr, tagged with the rule and symbol.
	Logger() *slog.Logger
}

// FunctionContext is the Context of a function call (the name of eKuiper's API).
type FunctionContext = Context

// StreamContext is the Context of a source or sink instance (the name of eKuiper's API).
type StreamContext = Context

// Function is a SQL function, in the style of eKuiper's api.Function.
//
// One value serves every rule that calls the function, possibly from several
// goroutines at once (one per Invoke stream); within one stream the calls are
// made one after the other, in order.
type Function interface {
	// Validate is called once per Invoke stream, before any call. The protocol
	// passes only the number of arguments the SQL gives, so args has that length
	// and every element is nil. An error ends the stream with INVALID_ARGUMENT.
	Validate(args []any) error
	// Exec computes one result. The args are Go values (see FromValue); for an
	// aggregate each argument is a []any with the values of the group. The result
	// is converted with ToValue. An error, a result that cannot be converted, or a
	// panic becomes the error of this row only; the other rows of the batch go on.
	Exec(ctx FunctionContext, args []any) (any, error)
	// IsAggregate tells whether the function aggregates a group of rows.
	IsAggregate() bool
}

// Event is one row: its fields as Go values, an optional event time (the zero
// time means none: the server uses processing time) and the source's metadata.
type Event struct {
	Fields    map[string]any
	Timestamp time.Time
	Meta      map[string]string
}

// Emit sends events from a source to the server, as one message. It blocks
// while the server is not reading (flow control), and returns an error once the
// stream is gone: the source should then return from Open.
type Emit func(events ...Event) error

// Source produces events, in the style of eKuiper's api.Source. A new value is
// made by its factory for each OpenSource call, i.e. for each rule that reads
// the stream, so it can keep its state in its fields.
type Source interface {
	// Configure receives the stream's DATASOURCE and options (numbers from the
	// options are float64; see IntProp and friends). An error refuses the stream
	// with INVALID_ARGUMENT.
	Configure(datasource string, props map[string]any) error
	// Open produces events with emit until ctx is done, then returns nil. If it
	// returns nil earlier (a finite source), the stream stays open without events
	// until the server ends it. An error ends the stream with that error, and the
	// server restarts the source according to the rule's restart strategy.
	Open(ctx StreamContext, emit Emit) error
	// Close releases what Open used; it is called once after Open has returned.
	Close(ctx StreamContext) error
}

// Sink consumes events, in the style of eKuiper's api.Sink. A new value is made
// by its factory for each OpenSink call (each rule action).
type Sink interface {
	// Configure receives the action's properties. An error refuses the sink with
	// INVALID_ARGUMENT.
	Configure(props map[string]any) error
	// Open connects or opens files; an error ends the stream with UNAVAILABLE.
	Open(ctx StreamContext) error
	// Collect writes one batch. nil acknowledges the batch; an error is sent to
	// the server in the acknowledgement, and the server sends the batch again.
	// A panic is recovered and acknowledged as an error the same way.
	Collect(ctx StreamContext, events []Event) error
	// Close is called once when the stream ends, if Open succeeded.
	Close(ctx StreamContext) error
}

// FunctionDef names a function of a plugin.
type FunctionDef struct {
	// Name as used in SQL; symbol names are global in the server, so prefix them.
	Name string
	// One-line description, returned by Describe.
	Description string
	// The implementation, shared by every stream.
	Function Function
}

// SourceDef names a source type of a plugin.
type SourceDef struct {
	// Name as used in a stream's TYPE.
	Name string
	// One-line description, returned by Describe.
	Description string
	// New makes one instance per OpenSource call.
	New func() Source
}

// SinkDef names a sink type of a plugin.
type SinkDef struct {
	// Name as used in a rule action.
	Name string
	// One-line description, returned by Describe.
	Description string
	// New makes one instance per OpenSink call.
	New func() Sink
}

// Plugin is everything a plugin provides; Serve serves it.
type Plugin struct {
	// Name and Version must match the package's manifest.json.
	Name    string
	Version string
	// The symbols, in the order Describe lists them.
	Functions []FunctionDef
	Sources   []SourceDef
	Sinks     []SinkDef
}

// ArgCount is a helper for Validate: an error unless there are n arguments.
func ArgCount(args []any, n int) error {
	if len(args) != n {
		return fmt.Errorf("takes %d argument(s), got %d", n, len(args))
	}
	return nil
}
