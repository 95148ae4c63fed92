package sdk

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

func TestValueRoundTrip(t *testing.T) {
	when := time.Date(2026, 12, 1, 10, 30, 0, 123456789, time.UTC)
	cases := []any{
		nil,
		true,
		false,
		int64(0),
		int64(math.MinInt64),
		int64(math.MaxInt64),
		0.0,
		-1.25,
		math.Inf(1),
		"",
		"héllo ✓",
		[]byte{},
		[]byte{0, 1, 255},
		when,
		[]any{},
		[]any{int64(1), "two", nil, []any{3.0}},
		map[string]any{},
		map[string]any{"a": int64(1), "b": map[string]any{"c": []any{true, []byte("x"), when}}},
	}
	for _, want := range cases {
		v, err := ToValue(want)
		if err != nil {
			t.Fatalf("ToValue(%#v): %v", want, err)
		}
		// Through the wire format too, as the values travel.
		wire, err := proto.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		decoded := &oortv1.Value{}
		if err := proto.Unmarshal(wire, decoded); err != nil {
			t.Fatal(err)
		}
		got := FromValue(decoded)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %#v gave %#v", want, got)
		}
	}
}

func TestToValueKinds(t *testing.T) {
	type myString string
	type myInt int16
	s := "p"
	var nilPtr *int
	when := time.Unix(1700000000, 5).In(time.FixedZone("x", 3600))
	cases := []struct {
		in   any
		want any // as FromValue gives it back
	}{
		{int(7), int64(7)},
		{int8(-8), int64(-8)},
		{int16(16), int64(16)},
		{int32(-32), int64(-32)},
		{uint(1), int64(1)},
		{uint8(8), int64(8)},
		{uint16(16), int64(16)},
		{uint32(math.MaxUint32), int64(math.MaxUint32)},
		{uint64(math.MaxInt64), int64(math.MaxInt64)},
		{float32(0.5), 0.5},
		{myString("m"), "m"},
		{myInt(3), int64(3)},
		{&s, "p"},
		{nilPtr, nil},
		{json.Number("12"), int64(12)},
		{json.Number("1.5"), 1.5},
		{[]string{"a", "b"}, []any{"a", "b"}},
		{[]int64(nil), nil},
		{[2]float64{1, 2}, []any{1.0, 2.0}},
		{map[string]int{"x": 1}, map[string]any{"x": int64(1)}},
		{map[myString]string{"k": "v"}, map[string]any{"k": "v"}},
		{map[string]any(nil), map[string]any{}},
		{[]map[string]any{{"a": nil}}, []any{map[string]any{"a": nil}}},
		{when, when.UTC()},
		{&when, when.UTC()},
		{&oortv1.Value{Kind: &oortv1.Value_IntValue{IntValue: 4}}, int64(4)},
		{(*oortv1.Value)(nil), nil},
		{&oortv1.Value{}, nil}, // no kind reads as null
	}
	for _, c := range cases {
		v, err := ToValue(c.in)
		if err != nil {
			t.Errorf("ToValue(%#v): %v", c.in, err)
			continue
		}
		if got := FromValue(v); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ToValue(%#v) reads back as %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestToValueErrors(t *testing.T) {
	cases := []struct {
		in      any
		message string
	}{
		{uint64(math.MaxInt64 + 1), "above the largest BIGINT"},
		{make(chan int), "cannot convert chan int"},
		{map[int]string{1: "x"}, "map keys must be strings"},
		{[]any{1, func() {}}, "element 1: cannot convert func()"},
		{json.Number("x"), `json.Number "x"`},
		// The failing field with the smallest name, whatever the map order.
		{map[string]any{"z": make(chan int), "b": struct{}{}, "a": 1}, `field "b": cannot convert struct {}`},
	}
	for _, c := range cases {
		for range 5 {
			_, err := ToValue(c.in)
			if err == nil || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("ToValue(%T): %v, want an error with %q", c.in, err, c.message)
			}
		}
	}
}

func TestFromValueEncodings(t *testing.T) {
	// Both encodings of null, and what another SDK may send.
	if got := FromValue(&oortv1.Value{Kind: &oortv1.Value_NullValue{}}); got != nil {
		t.Errorf("null: %#v", got)
	}
	if got := FromValue(nil); got != nil {
		t.Errorf("nil: %#v", got)
	}
	if got := FromValue(&oortv1.Value{Kind: &oortv1.Value_BytesValue{}}); !reflect.DeepEqual(got, []byte{}) {
		t.Errorf("empty bytes: %#v", got)
	}
	if got := FromValue(&oortv1.Value{Kind: &oortv1.Value_ListValue{}}); !reflect.DeepEqual(got, []any{}) {
		t.Errorf("list without ListValue: %#v", got)
	}
	if got := FromValue(&oortv1.Value{Kind: &oortv1.Value_MapValue{}}); !reflect.DeepEqual(got, map[string]any{}) {
		t.Errorf("map without MapValue: %#v", got)
	}
	ts := FromValue(&oortv1.Value{Kind: &oortv1.Value_TimestampValue{TimestampValue: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}}})
	if ts != time.Unix(1, 2).UTC() {
		t.Errorf("timestamp: %#v", ts)
	}
}

func TestEventConversion(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	e := Event{Fields: map[string]any{"a": int64(1)}, Timestamp: when, Meta: map[string]string{"topic": "t"}}
	pb, err := ToEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := FromEvent(pb); !reflect.DeepEqual(got, e) {
		t.Errorf("event round trip: %#v", got)
	}
	// No timestamp stays none; missing maps read as empty ones.
	pb, err = ToEvent(Event{})
	if err != nil || pb.Timestamp != nil {
		t.Fatalf("empty event: %v %v", pb, err)
	}
	got := FromEvent(&oortv1.Event{})
	if got.Fields == nil || got.Meta == nil || !got.Timestamp.IsZero() {
		t.Errorf("empty event: %#v", got)
	}
	if _, err := ToEvent(Event{Fields: map[string]any{"bad": make(chan int)}}); err == nil {
		t.Error("an unconvertible field is an error")
	}
}

func TestProps(t *testing.T) {
	s, err := structpb.NewStruct(map[string]any{
		"n": 100, "f": 1.5, "s": "text", "num": "42", "b": true, "bs": "false", "null": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	props := configMap(s)
	if props["n"] != 100.0 {
		t.Fatalf("numbers of a Struct are float64: %#v", props["n"])
	}
	check := func(got any, err error, want any) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("got %#v %v, want %#v", got, err, want)
		}
	}
	i, err := IntProp(props, "n", 0)
	check(i, err, int64(100))
	i, err = IntProp(props, "num", 0)
	check(i, err, int64(42))
	i, err = IntProp(props, "missing", 7)
	check(i, err, int64(7))
	i, err = IntProp(props, "null", 7)
	check(i, err, int64(7))
	i, err = IntProp(map[string]any{"x": int64(3)}, "x", 0)
	check(i, err, int64(3))
	f, err := FloatProp(props, "f", 0)
	check(f, err, 1.5)
	f, err = FloatProp(props, "n", 0)
	check(f, err, 100.0)
	str, err := StringProp(props, "s", "")
	check(str, err, "text")
	b, err := BoolProp(props, "b", false)
	check(b, err, true)
	b, err = BoolProp(props, "bs", true)
	check(b, err, false)

	for _, bad := range []func() error{
		func() error { _, err := IntProp(props, "f", 0); return err },
		func() error { _, err := IntProp(props, "s", 0); return err },
		func() error { _, err := IntProp(props, "b", 0); return err },
		func() error { _, err := FloatProp(props, "s", 0); return err },
		func() error { _, err := StringProp(props, "n", ""); return err },
		func() error { _, err := BoolProp(props, "s", false); return err },
	} {
		if err := bad(); err == nil || !strings.Contains(err.Error(), "property") {
			t.Errorf("want an error naming the property, got %v", err)
		}
	}
	if got := configMap(nil); got == nil || len(got) != 0 {
		t.Errorf("no config: %#v", got)
	}
}

func TestPluginCheck(t *testing.T) {
	fn := FunctionDef{Name: "f", Function: nopFunction{}}
	cases := []struct {
		p       *Plugin
		message string
	}{
		{nil, "needs a *Plugin"},
		{&Plugin{Version: "1"}, "Name and a Version"},
		{&Plugin{Name: "p", Version: "1", Functions: []FunctionDef{fn, fn}}, `function "f" is defined twice`},
		{&Plugin{Name: "p", Version: "1", Functions: []FunctionDef{{Name: "g"}}}, `function "g" has no implementation`},
		{&Plugin{Name: "p", Version: "1", Sources: []SourceDef{{New: nil}}}, "a source has no name"},
		{&Plugin{Name: "p", Version: "1", Sinks: []SinkDef{{Name: "s"}}}, `sink "s" has no implementation`},
	}
	for _, c := range cases {
		if err := c.p.check(); err == nil || !strings.Contains(err.Error(), c.message) {
			t.Errorf("check: %v, want %q", err, c.message)
		}
	}
	ok := &Plugin{Name: "p", Version: "1", Functions: []FunctionDef{fn},
		Sources: []SourceDef{{Name: "f", New: func() Source { return nil }}}} // a source may share a function's name
	if err := ok.check(); err != nil {
		t.Errorf("check: %v", err)
	}
}

type nopFunction struct{}

func (nopFunction) Validate([]any) error                            { return nil }
func (nopFunction) Exec(_ FunctionContext, args []any) (any, error) { return args[0], nil }
func (nopFunction) IsAggregate() bool                               { return false }

func TestDatasourceOptions(t *testing.T) {
	props := map[string]any{"interval_ms": 100.0, "keep": true}
	name, merged, err := DatasourceOptions("ticks?interval_ms=50&count=3", props)
	if err != nil || name != "ticks" {
		t.Fatalf("%q %v", name, err)
	}
	want := map[string]any{"interval_ms": "50", "count": "3", "keep": true}
	if !reflect.DeepEqual(merged, want) {
		t.Fatalf("merged %v, want %v", merged, want)
	}
	if props["interval_ms"] != 100.0 {
		t.Fatal("props was modified")
	}
	if n, err := IntProp(merged, "interval_ms", 0); err != nil || n != 50 {
		t.Fatalf("IntProp: %v %v", n, err)
	}
	name, merged, err = DatasourceOptions("plain", nil)
	if err != nil || name != "plain" || len(merged) != 0 {
		t.Fatalf("%q %v %v", name, merged, err)
	}
	if _, _, err := DatasourceOptions("x?a=%zz", nil); err == nil {
		t.Fatal("a bad query is an error")
	}
}
