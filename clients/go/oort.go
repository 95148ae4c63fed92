// Package oort is the Go client of Oort's gRPC API (oort.v1): the generated
// code is in gen/oort/v1 (package oortv1), and this package adds a thin layer
// over it — one connection with every service client, conversions between Go
// values and oortv1.Value, and helpers for the calls most programs make.
//
//	c, err := oort.Dial("127.0.0.1:9081", oort.WithToken(token)) // or $OORT_TOKEN; oort.WithTLS(caFile, "", "") for TLS
//	_, err = c.CreateStream(ctx, `CREATE STREAM s (t FLOAT) WITH (TYPE="grpc", DATASOURCE="s")`)
//
// Errors are the gRPC status errors of grpc-go: read them with status.Code(err).
package oort

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

// Client is a connection to oortd with a client for each service of oort.v1.
type Client struct {
	Conn        *grpc.ClientConn
	Streams     oortv1.StreamServiceClient
	Rules       oortv1.RuleServiceClient
	Events      oortv1.EventServiceClient
	Plugins     oortv1.PluginServiceClient
	Services    oortv1.ExternalServiceClient
	Functions   oortv1.FunctionServiceClient
	Connectors  oortv1.ConnectorServiceClient
	State       oortv1.StateServiceClient
	Connections oortv1.ConnectionServiceClient
	Schemas     oortv1.SchemaServiceClient
}

// TokenEnv is the environment variable Dial takes the token from when no
// WithToken option is given.
const TokenEnv = "OORT_TOKEN"

// Dial connects to oortd at addr (host:port). Every call carries the token of
// WithToken, or by default of $OORT_TOKEN, as `authorization: Bearer <token>`.
// The connection is plaintext unless an option asks for TLS (WithTLS, or
// grpc.WithTransportCredentials). It is made lazily, on the first call.
func Dial(addr string, opts ...grpc.DialOption) (*Client, error) {
	token, tokenSet := "", false
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	for _, opt := range opts {
		switch o := opt.(type) {
		case tokenOption:
			token, tokenSet = o.token, true
		case tlsOption:
			config, err := o.config()
			if err != nil {
				return nil, err
			}
			dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(config)))
		default:
			dialOpts = append(dialOpts, opt)
		}
	}
	if !tokenSet {
		token = os.Getenv(TokenEnv)
	}
	if token = strings.TrimSpace(token); token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(TokenCredentials(token)))
	}
	conn, err := grpc.NewClient(addr, dialOpts...)
	if err != nil {
		return nil, err
	}
	return New(conn), nil
}

// WithToken is a Dial option: every call carries `authorization: Bearer
// <token>`, in place of $OORT_TOKEN. WithToken("") sends no token.
// The token is the server's OORT_AUTH_TOKEN, or what it wrote to
// <data_dir>/admin.token at its first start (surrounding space is dropped).
func WithToken(token string) grpc.DialOption { return tokenOption{token: token} }

type tokenOption struct {
	grpc.EmptyDialOption
	token string
}

// WithTLS is a Dial option: TLS, verifying the server's certificate against
// the CA certificates of the PEM file caFile (the system's when caFile is "").
// With certFile and keyFile (PEM) the client presents that certificate
// (mutual TLS); pass "" for both otherwise. Dial fails when a file does not load.
// For any other configuration, pass grpc.WithTransportCredentials(credentials.NewTLS(config)).
func WithTLS(caFile, certFile, keyFile string) grpc.DialOption {
	return tlsOption{caFile: caFile, certFile: certFile, keyFile: keyFile}
}

type tlsOption struct {
	grpc.EmptyDialOption
	caFile, certFile, keyFile string
}

func (o tlsOption) config() (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("oort: reading the CA certificate: %w", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("oort: no PEM certificate in %s", o.caFile)
		}
	}
	if o.certFile != "" || o.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("oort: loading the client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{cert}
	}
	return config, nil
}

// TokenCredentials are per-RPC credentials that send `authorization: Bearer
// <token>`, over TLS and plaintext alike (oortd on a loopback address needs the
// token too): for a connection made without Dial, e.g.
// grpc.NewClient(addr, grpc.WithPerRPCCredentials(oort.TokenCredentials(token)), ...).
func TokenCredentials(token string) credentials.PerRPCCredentials {
	return bearerToken{"authorization": "Bearer " + token}
}

type bearerToken map[string]string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return t, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

// New wraps an existing connection.
func New(conn *grpc.ClientConn) *Client {
	return &Client{
		Conn:        conn,
		Streams:     oortv1.NewStreamServiceClient(conn),
		Rules:       oortv1.NewRuleServiceClient(conn),
		Events:      oortv1.NewEventServiceClient(conn),
		Plugins:     oortv1.NewPluginServiceClient(conn),
		Services:    oortv1.NewExternalServiceClient(conn),
		Functions:   oortv1.NewFunctionServiceClient(conn),
		Connectors:  oortv1.NewConnectorServiceClient(conn),
		State:       oortv1.NewStateServiceClient(conn),
		Connections: oortv1.NewConnectionServiceClient(conn),
		Schemas:     oortv1.NewSchemaServiceClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// CreateStream creates a stream or table from `CREATE STREAM ...` / `CREATE TABLE ...`.
func (c *Client) CreateStream(ctx context.Context, sql string) (*oortv1.Stream, error) {
	res, err := c.Streams.CreateStream(ctx, &oortv1.CreateStreamRequest{Sql: sql})
	return res.GetStream(), err
}

// GetStream returns one stream or table.
func (c *Client) GetStream(ctx context.Context, name string) (*oortv1.Stream, error) {
	res, err := c.Streams.GetStream(ctx, &oortv1.GetStreamRequest{Name: name})
	return res.GetStream(), err
}

// DeleteStream deletes a stream or table.
func (c *Client) DeleteStream(ctx context.Context, name string) error {
	_, err := c.Streams.DeleteStream(ctx, &oortv1.DeleteStreamRequest{Name: name})
	return err
}

// Action returns an action of the given sink type with props (nil for none).
func Action(sinkType string, props map[string]any) (*oortv1.Action, error) {
	action := &oortv1.Action{Type: sinkType}
	if props != nil {
		s, err := structpb.NewStruct(props)
		if err != nil {
			return nil, err
		}
		action.Props = s
	}
	return action, nil
}

// CreateRule creates (and starts) a rule whose results go to the given sink
// types, without props; with no sink type, to "grpc", which TailRule reads.
// Use c.Rules.CreateRule for options and props.
func (c *Client) CreateRule(ctx context.Context, id, sql string, sinkTypes ...string) (*oortv1.Rule, error) {
	if len(sinkTypes) == 0 {
		sinkTypes = []string{"grpc"}
	}
	rule := &oortv1.Rule{Id: id, Sql: sql}
	for _, t := range sinkTypes {
		rule.Actions = append(rule.Actions, &oortv1.Action{Type: t})
	}
	res, err := c.Rules.CreateRule(ctx, &oortv1.CreateRuleRequest{Rule: rule})
	return res.GetRule(), err
}

// RuleStatus returns the state and per-operator counters of a rule.
func (c *Client) RuleStatus(ctx context.Context, id string) (*oortv1.GetRuleStatusResponse, error) {
	return c.Rules.GetRuleStatus(ctx, &oortv1.GetRuleStatusRequest{Id: id})
}

// Publish sends rows (column name → Go value, see ToValue) into a `TYPE="grpc"`
// stream in one client stream, and returns how many the server accepted.
func (c *Client) Publish(ctx context.Context, stream string, rows ...map[string]any) (uint64, error) {
	events := make([]*oortv1.Event, 0, len(rows))
	for _, row := range rows {
		event, err := ToEvent(row)
		if err != nil {
			return 0, err
		}
		events = append(events, event)
	}
	return c.PublishEvents(ctx, stream, events...)
}

// PublishBatch is how many events one PublishRequest carries: a message per
// event would cost a round of framing each.
const PublishBatch = 256

// PublishEvents is Publish for events already built.
func (c *Client) PublishEvents(ctx context.Context, stream string, events ...*oortv1.Event) (uint64, error) {
	call, err := c.Events.Publish(ctx)
	if err != nil {
		return 0, err
	}
	for start := 0; start < len(events); start += PublishBatch {
		batch := events[start:min(start+PublishBatch, len(events))]
		if err := call.Send(&oortv1.PublishRequest{Stream: stream, Event: batch[0], Events: batch[1:]}); err != nil {
			if errors.Is(err, io.EOF) {
				break // the server ended the call; CloseAndRecv returns its status
			}
			return 0, err
		}
	}
	res, err := call.CloseAndRecv()
	return res.GetAccepted(), err
}

// TailBatch is how many results one TailRuleResponse carries at most, as
// TailRule asks (max_batch): a message per result would cost a round of
// framing each. The server sends what it has without waiting to fill one.
const TailBatch = 256

// Tail is the live output of a rule (RuleService.TailRule).
type Tail struct {
	stream grpc.ServerStreamingClient[oortv1.TailRuleResponse]
	cancel context.CancelFunc
	events []*oortv1.Event // received, not yet read
}

// TailRule opens the rule's output, read one result at a time with Next or
// NextEvent; Close (or cancelling ctx) ends it. It returns once the server has
// opened the tail, so events published after it are seen, or with the
// server's error (e.g. NotFound).
func (c *Client) TailRule(ctx context.Context, id string) (*Tail, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.Rules.TailRule(ctx, &oortv1.TailRuleRequest{Id: id, MaxBatch: TailBatch})
	if err == nil {
		_, err = stream.Header() // waits for the response headers, or the call's end
	}
	if err == nil && stream.Trailer() != nil && len(stream.Trailer()) > 0 {
		// A trailers-only response: the call already failed; Recv says how.
		_, err = stream.Recv()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &Tail{stream: stream, cancel: cancel}, nil
}

// NextEvent waits for the next result. It returns io.EOF when the rule stopped.
func (t *Tail) NextEvent() (*oortv1.Event, error) {
	for len(t.events) == 0 {
		res, err := t.stream.Recv()
		if err != nil {
			return nil, err
		}
		t.events = res.GetEvents()
		if event := res.GetEvent(); event != nil { // an oortd older than max_batch answers in Event
			t.events = []*oortv1.Event{event}
		}
	}
	event := t.events[0]
	t.events = t.events[1:]
	return event, nil
}

// Next waits for the next result as column name → Go value (see FromValue).
func (t *Tail) Next() (map[string]any, error) {
	event, err := t.NextEvent()
	if err != nil {
		return nil, err
	}
	return FromEvent(event), nil
}

// Close ends the call.
func (t *Tail) Close() { t.cancel() }

// ToValue converts a Go value: nil, bool, any integer, float32/64, string,
// []byte, time.Time, []any (ARRAY), map[string]any (STRUCT), or a *oortv1.Value.
func ToValue(v any) (*oortv1.Value, error) {
	switch x := v.(type) {
	case nil:
		return &oortv1.Value{Kind: &oortv1.Value_NullValue{}}, nil
	case *oortv1.Value:
		return x, nil
	case bool:
		return &oortv1.Value{Kind: &oortv1.Value_BoolValue{BoolValue: x}}, nil
	case int:
		return intValue(int64(x)), nil
	case int8:
		return intValue(int64(x)), nil
	case int16:
		return intValue(int64(x)), nil
	case int32:
		return intValue(int64(x)), nil
	case int64:
		return intValue(x), nil
	case uint8:
		return intValue(int64(x)), nil
	case uint16:
		return intValue(int64(x)), nil
	case uint32:
		return intValue(int64(x)), nil
	case float32:
		return &oortv1.Value{Kind: &oortv1.Value_FloatValue{FloatValue: float64(x)}}, nil
	case float64:
		return &oortv1.Value{Kind: &oortv1.Value_FloatValue{FloatValue: x}}, nil
	case string:
		return &oortv1.Value{Kind: &oortv1.Value_StringValue{StringValue: x}}, nil
	case []byte:
		return &oortv1.Value{Kind: &oortv1.Value_BytesValue{BytesValue: x}}, nil
	case time.Time:
		return &oortv1.Value{Kind: &oortv1.Value_TimestampValue{TimestampValue: timestamppb.New(x)}}, nil
	case []any:
		list := &oortv1.ListValue{Values: make([]*oortv1.Value, 0, len(x))}
		for _, item := range x {
			value, err := ToValue(item)
			if err != nil {
				return nil, err
			}
			list.Values = append(list.Values, value)
		}
		return &oortv1.Value{Kind: &oortv1.Value_ListValue{ListValue: list}}, nil
	case map[string]any:
		fields, err := toFields(x)
		if err != nil {
			return nil, err
		}
		return &oortv1.Value{Kind: &oortv1.Value_MapValue{MapValue: &oortv1.MapValue{Fields: fields}}}, nil
	default:
		return nil, fmt.Errorf("oort: cannot convert %T to a Value", v)
	}
}

func intValue(v int64) *oortv1.Value { return &oortv1.Value{Kind: &oortv1.Value_IntValue{IntValue: v}} }

func toFields(row map[string]any) (map[string]*oortv1.Value, error) {
	fields := make(map[string]*oortv1.Value, len(row))
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first error is the same every time
	for _, k := range keys {
		value, err := ToValue(row[k])
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		fields[k] = value
	}
	return fields, nil
}

// ToEvent converts a row of Go values to an event.
func ToEvent(row map[string]any) (*oortv1.Event, error) {
	fields, err := toFields(row)
	if err != nil {
		return nil, err
	}
	return &oortv1.Event{Fields: fields}, nil
}

// FromValue converts a Value to Go: nil, bool, int64, float64, string, []byte,
// time.Time, []any or map[string]any.
func FromValue(v *oortv1.Value) any {
	switch x := v.GetKind().(type) {
	case *oortv1.Value_BoolValue:
		return x.BoolValue
	case *oortv1.Value_IntValue:
		return x.IntValue
	case *oortv1.Value_FloatValue:
		return x.FloatValue
	case *oortv1.Value_StringValue:
		return x.StringValue
	case *oortv1.Value_BytesValue:
		return x.BytesValue
	case *oortv1.Value_TimestampValue:
		return x.TimestampValue.AsTime()
	case *oortv1.Value_ListValue:
		out := make([]any, 0, len(x.ListValue.GetValues()))
		for _, item := range x.ListValue.GetValues() {
			out = append(out, FromValue(item))
		}
		return out
	case *oortv1.Value_MapValue:
		return FromEvent(&oortv1.Event{Fields: x.MapValue.GetFields()})
	default:
		return nil
	}
}

// FromEvent converts an event's fields to Go values.
func FromEvent(e *oortv1.Event) map[string]any {
	out := make(map[string]any, len(e.GetFields()))
	for k, v := range e.GetFields() {
		out[k] = FromValue(v)
	}
	return out
}
