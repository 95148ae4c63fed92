package sdk

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

// randomValue makes a Value of every kind, nested up to depth.
func randomValue(r *rand.Rand, depth int) *oortv1.Value {
	kinds := 10
	if depth <= 0 {
		kinds = 8
	}
	switch r.IntN(kinds) {
	case 0:
		return &oortv1.Value{Kind: &oortv1.Value_NullValue{}}
	case 1:
		return &oortv1.Value{Kind: &oortv1.Value_BoolValue{BoolValue: r.IntN(2) == 1}}
	case 2:
		ints := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, r.Int64(), -r.Int64()}
		return &oortv1.Value{Kind: &oortv1.Value_IntValue{IntValue: ints[r.IntN(len(ints))]}}
	case 3:
		floats := []float64{0, -0.5, math.Inf(-1), math.MaxFloat64, r.NormFloat64()}
		return &oortv1.Value{Kind: &oortv1.Value_FloatValue{FloatValue: floats[r.IntN(len(floats))]}}
	case 4:
		strs := []string{"", "a", "héllo ✓", strings.Repeat("x", 300)}
		return &oortv1.Value{Kind: &oortv1.Value_StringValue{StringValue: strs[r.IntN(len(strs))]}}
	case 5:
		b := make([]byte, r.IntN(200))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return &oortv1.Value{Kind: &oortv1.Value_BytesValue{BytesValue: b}}
	case 6:
		ts := []*timestamppb.Timestamp{{}, {Seconds: -1, Nanos: 999999999}, timestamppb.New(time.Now())}
		return &oortv1.Value{Kind: &oortv1.Value_TimestampValue{TimestampValue: ts[r.IntN(len(ts))]}}
	case 7:
		return &oortv1.Value{}
	case 8:
		l := &oortv1.ListValue{}
		for range r.IntN(4) {
			l.Values = append(l.Values, randomValue(r, depth-1))
		}
		return &oortv1.Value{Kind: &oortv1.Value_ListValue{ListValue: l}}
	default:
		m := &oortv1.MapValue{Fields: map[string]*oortv1.Value{}}
		for i := range r.IntN(4) {
			m.Fields[string(rune('a'+i))] = randomValue(r, depth-1)
		}
		return &oortv1.Value{Kind: &oortv1.Value_MapValue{MapValue: m}}
	}
}

func TestFastCodecDecodesAsProto(t *testing.T) {
	codec := newFastCodec()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		batch := &pluginv1.InvokeBatch{BatchId: r.Uint64() >> r.IntN(64)}
		for range r.IntN(20) {
			row := &pluginv1.ArgRow{}
			for range r.IntN(4) {
				row.Args = append(row.Args, randomValue(r, 3))
			}
			batch.Rows = append(batch.Rows, row)
		}
		want := &pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: batch}}
		wire, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeInvokeBatchRequest(wire); err != nil {
			t.Fatalf("case %d left the fast path: %v", i, err)
		}
		got := &pluginv1.InvokeRequest{}
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("case %d:\n got %v\nwant %v", i, got, want)
		}
	}
}

func TestFastCodecFallsBack(t *testing.T) {
	codec := newFastCodec()
	open := &pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Open{Open: &pluginv1.InvokeOpen{Function: "f", ArgCount: 2}}}
	wire, _ := proto.Marshal(open)
	withUnknown := protowire.AppendTag(append([]byte{}, wire...), 99, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 5)

	value := func(v *oortv1.Value) []byte {
		b, _ := proto.Marshal(&pluginv1.InvokeRequest{Message: &pluginv1.InvokeRequest_Batch{Batch: &pluginv1.InvokeBatch{
			Rows: []*pluginv1.ArgRow{{Args: []*oortv1.Value{v}}}}}})
		return b
	}
	// A Value with two kinds (the last wins) and one whose string is not UTF-8.
	twoKinds := protowire.AppendTag(nil, 3, protowire.VarintType)
	twoKinds = protowire.AppendVarint(twoKinds, 7)
	twoKinds = protowire.AppendTag(twoKinds, 2, protowire.VarintType)
	twoKinds = protowire.AppendVarint(twoKinds, 1)
	wrap := func(valueBytes []byte) []byte {
		row := protowire.AppendTag(nil, 1, protowire.BytesType)
		row = protowire.AppendBytes(row, valueBytes)
		batch := protowire.AppendTag(nil, 2, protowire.BytesType)
		batch = protowire.AppendBytes(batch, row)
		req := protowire.AppendTag(nil, 2, protowire.BytesType)
		return protowire.AppendBytes(req, batch)
	}
	badUTF8 := protowire.AppendTag(nil, 5, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff, 0xfe})

	deep := &oortv1.Value{Kind: &oortv1.Value_IntValue{IntValue: 1}}
	for range maxFastDepth + 5 {
		deep = &oortv1.Value{Kind: &oortv1.Value_ListValue{ListValue: &oortv1.ListValue{Values: []*oortv1.Value{deep}}}}
	}

	for name, wire := range map[string][]byte{
		"open":            wire,
		"unknown field":   withUnknown,
		"two kinds":       wrap(twoKinds),
		"deep":            value(deep),
		"empty":           {},
		"bad utf-8":       wrap(badUTF8),
		"truncated":       value(deep)[:20],
		"null with value": value(&oortv1.Value{Kind: &oortv1.Value_NullValue{NullValue: structpb.NullValue_NULL_VALUE}}),
	} {
		want := &pluginv1.InvokeRequest{}
		wantErr := proto.Unmarshal(wire, want)
		got := &pluginv1.InvokeRequest{}
		gotErr := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, got)
		if (gotErr == nil) != (wantErr == nil) || (wantErr == nil && !proto.Equal(got, want)) {
			t.Errorf("%s: got %v %v, want %v %v", name, got, gotErr, want, wantErr)
		}
	}
}

func TestFastCodecEncodesAsProto(t *testing.T) {
	codec := newFastCodec()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		resp := &pluginv1.InvokeResponse{BatchId: r.Uint64() >> r.IntN(64)}
		for range r.IntN(20) {
			if r.IntN(4) == 0 {
				resp.Results = append(resp.Results, &pluginv1.CallResult{Result: &pluginv1.CallResult_Error{Error: []string{"", "boom"}[r.IntN(2)]}})
			} else {
				resp.Results = append(resp.Results, &pluginv1.CallResult{Result: &pluginv1.CallResult_Value{Value: randomValue(r, 3)}})
			}
		}
		if r.IntN(10) == 0 {
			resp.Results = append(resp.Results, &pluginv1.CallResult{})
		}
		data, err := codec.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		wire := data.Materialize()
		got := &pluginv1.InvokeResponse{}
		if err := proto.Unmarshal(wire, got); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !proto.Equal(got, resp) {
			t.Fatalf("case %d:\n got %v\nwant %v", i, got, resp)
		}
		if want, _ := proto.Marshal(resp); !hasMap(resp) && string(want) != string(wire) {
			t.Fatalf("case %d: bytes differ from proto.Marshal", i)
		}
	}
	// What the fast path leaves to proto.Marshal (nil elements) gives what it gives.
	for _, odd := range []*pluginv1.InvokeResponse{
		{Results: []*pluginv1.CallResult{nil}},
		{Results: []*pluginv1.CallResult{{Result: &pluginv1.CallResult_Value{}}}},
		{Results: []*pluginv1.CallResult{{Result: &pluginv1.CallResult_Value{Value: &oortv1.Value{
			Kind: &oortv1.Value_ListValue{ListValue: &oortv1.ListValue{Values: []*oortv1.Value{nil}}}}}}}},
	} {
		want, wantErr := proto.Marshal(odd)
		got, gotErr := codec.Marshal(odd)
		if (gotErr == nil) != (wantErr == nil) || (wantErr == nil && string(got.Materialize()) != string(want)) {
			t.Errorf("%v: got %v, want %q %v", odd, gotErr, want, wantErr)
		}
	}
}

// hasMap tells whether a response holds a map, whose encoding order varies.
func hasMap(resp *pluginv1.InvokeResponse) bool {
	var walk func(v *oortv1.Value) bool
	walk = func(v *oortv1.Value) bool {
		if v.GetMapValue() != nil {
			return true
		}
		for _, item := range v.GetListValue().GetValues() {
			if walk(item) {
				return true
			}
		}
		return false
	}
	for _, r := range resp.Results {
		if walk(r.GetValue()) {
			return true
		}
	}
	return false
}
