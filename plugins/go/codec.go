package sdk

// A gRPC codec with a hand-written path for the two messages of the hot loop,
// the InvokeBatch requests and the InvokeResponse answers; everything else,
// and anything unusual in those (an unknown field, a field given twice, bad
// UTF-8, deep nesting), goes through the standard proto codec. protobuf-go
// decodes each oneof (every oort.v1.Value is one) through reflection, which
// was half of the plugin's time per row. codec_test.go checks both paths give
// the same messages as proto.Marshal and proto.Unmarshal.

import (
	"errors"
	"math"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec used below
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/oort-edge/oort/clients/go/gen/oort/plugin/v1"
	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

type fastCodec struct{ std encoding.CodecV2 }

func newFastCodec() encoding.CodecV2 { return fastCodec{std: encoding.GetCodecV2("proto")} }

func (fastCodec) Name() string { return "proto" }

func (c fastCodec) Marshal(v any) (mem.BufferSlice, error) {
	if resp, ok := v.(*pluginv1.InvokeResponse); ok {
		if buf, ok := appendInvokeResponse(nil, resp); ok {
			return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
		}
	}
	return c.std.Marshal(v)
}

func (c fastCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*pluginv1.InvokeRequest)
	if !ok {
		return c.std.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	if batch, err := decodeInvokeBatchRequest(b); err == nil {
		req.Message = &pluginv1.InvokeRequest_Batch{Batch: batch}
		return nil
	}
	return proto.Unmarshal(b, req)
}

// errSlow sends a message to the standard codec.
var errSlow = errors.New("not on the fast path")

// maxFastDepth bounds the nesting of lists and maps the fast path follows.
const maxFastDepth = 64

// decodeInvokeBatchRequest decodes an InvokeRequest that holds a batch.
func decodeInvokeBatchRequest(b []byte) (*pluginv1.InvokeBatch, error) {
	var batch *pluginv1.InvokeBatch
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 2 || typ != protowire.BytesType || batch != nil {
			return nil, errSlow
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, errSlow
		}
		b = b[n:]
		var err error
		if batch, err = decodeInvokeBatch(v); err != nil {
			return nil, err
		}
	}
	if batch == nil {
		return nil, errSlow
	}
	return batch, nil
}

func decodeInvokeBatch(b []byte) (*pluginv1.InvokeBatch, error) {
	batch := &pluginv1.InvokeBatch{}
	// First pass: the number of rows, so they take one allocation.
	rows, err := countField(b, 2)
	if err != nil {
		return nil, err
	}
	slab := make([]pluginv1.ArgRow, rows)
	batch.Rows = make([]*pluginv1.ArgRow, 0, rows)
	seenID := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errSlow
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType && !seenID:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, errSlow
			}
			b = b[n:]
			batch.BatchId = v
			seenID = true
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, errSlow
			}
			b = b[n:]
			row := &slab[len(batch.Rows)]
			if row.Args, err = decodeValues(v, 1, 0); err != nil {
				return nil, err
			}
			batch.Rows = append(batch.Rows, row)
		default:
			return nil, errSlow
		}
	}
	return batch, nil
}

// countField counts the length-delimited fields num of a message (and checks
// that the message parses).
func countField(b []byte, num protowire.Number) (int, error) {
	count := 0
	for len(b) > 0 {
		n2, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errSlow
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(n2, typ, b)
		if n < 0 {
			return 0, errSlow
		}
		b = b[n:]
		if n2 == num && typ == protowire.BytesType {
			count++
		}
	}
	return count, nil
}

// decodeValues decodes the repeated Value field num of a message (ArgRow,
// ListValue), which must have no other field.
func decodeValues(b []byte, num protowire.Number, depth int) ([]*oortv1.Value, error) {
	count, err := countField(b, num)
	if err != nil {
		return nil, err
	}
	slab := make([]oortv1.Value, count)
	out := make([]*oortv1.Value, count)
	for i := 0; len(b) > 0; i++ {
		n2, typ, n := protowire.ConsumeTag(b)
		if n < 0 || n2 != num || typ != protowire.BytesType {
			return nil, errSlow
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, errSlow
		}
		b = b[n:]
		if err := decodeValue(v, &slab[i], depth); err != nil {
			return nil, err
		}
		out[i] = &slab[i]
	}
	return out, nil
}

func decodeValue(b []byte, out *oortv1.Value, depth int) error {
	if depth > maxFastDepth {
		return errSlow
	}
	set := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || set { // two kinds set: the standard codec applies the merge rules
			return errSlow
		}
		b = b[n:]
		set = true
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errSlow
			}
			b = b[n:]
			switch num {
			case 1:
				out.Kind = &oortv1.Value_NullValue{NullValue: structpb.NullValue(int32(v))}
			case 2:
				out.Kind = &oortv1.Value_BoolValue{BoolValue: v != 0}
			case 3:
				out.Kind = &oortv1.Value_IntValue{IntValue: int64(v)}
			default:
				return errSlow
			}
		case protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 || num != 4 {
				return errSlow
			}
			b = b[n:]
			out.Kind = &oortv1.Value_FloatValue{FloatValue: math.Float64frombits(v)}
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errSlow
			}
			b = b[n:]
			switch num {
			case 5:
				if !utf8.Valid(v) {
					return errSlow
				}
				out.Kind = &oortv1.Value_StringValue{StringValue: string(v)}
			case 6:
				out.Kind = &oortv1.Value_BytesValue{BytesValue: append([]byte{}, v...)}
			case 7:
				ts, err := decodeTimestamp(v)
				if err != nil {
					return err
				}
				out.Kind = &oortv1.Value_TimestampValue{TimestampValue: ts}
			case 8:
				values, err := decodeValues(v, 1, depth+1)
				if err != nil {
					return err
				}
				out.Kind = &oortv1.Value_ListValue{ListValue: &oortv1.ListValue{Values: values}}
			case 9:
				fields, err := decodeMap(v, depth+1)
				if err != nil {
					return err
				}
				out.Kind = &oortv1.Value_MapValue{MapValue: &oortv1.MapValue{Fields: fields}}
			default:
				return errSlow
			}
		default:
			return errSlow
		}
	}
	return nil
}

func decodeTimestamp(b []byte) (*timestamppb.Timestamp, error) {
	ts := &timestamppb.Timestamp{}
	var seen [3]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType || (num != 1 && num != 2) || seen[num] {
			return nil, errSlow
		}
		seen[num] = true
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, errSlow
		}
		b = b[n:]
		if num == 1 {
			ts.Seconds = int64(v)
		} else {
			ts.Nanos = int32(v)
		}
	}
	return ts, nil
}

func decodeMap(b []byte, depth int) (map[string]*oortv1.Value, error) {
	count, err := countField(b, 1)
	if err != nil {
		return nil, err
	}
	fields := make(map[string]*oortv1.Value, count)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, errSlow
		}
		b = b[n:]
		entry, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, errSlow
		}
		b = b[n:]
		var (
			key     string
			value   *oortv1.Value
			seenKey bool
		)
		for len(entry) > 0 {
			num, typ, n := protowire.ConsumeTag(entry)
			if n < 0 || typ != protowire.BytesType {
				return nil, errSlow
			}
			entry = entry[n:]
			v, n := protowire.ConsumeBytes(entry)
			if n < 0 {
				return nil, errSlow
			}
			entry = entry[n:]
			switch {
			case num == 1 && !seenKey:
				if !utf8.Valid(v) {
					return nil, errSlow
				}
				key, seenKey = string(v), true
			case num == 2 && value == nil:
				value = &oortv1.Value{}
				if err := decodeValue(v, value, depth); err != nil {
					return nil, err
				}
			default:
				return nil, errSlow
			}
		}
		if _, dup := fields[key]; dup {
			return nil, errSlow
		}
		if value == nil {
			value = &oortv1.Value{}
		}
		fields[key] = value
	}
	return fields, nil
}

// appendInvokeResponse encodes resp as proto.Marshal does (fields in number
// order); false sends it to the standard codec (a nil element, say).
func appendInvokeResponse(b []byte, resp *pluginv1.InvokeResponse) ([]byte, bool) {
	size := 0
	if resp.BatchId != 0 {
		size += 1 + protowire.SizeVarint(resp.BatchId)
	}
	for _, r := range resp.Results {
		s, ok := sizeCallResult(r)
		if !ok {
			return nil, false
		}
		size += 1 + protowire.SizeBytes(s)
	}
	if b == nil {
		b = make([]byte, 0, size)
	}
	if resp.BatchId != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, resp.BatchId)
	}
	for _, r := range resp.Results {
		s, _ := sizeCallResult(r)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(s))
		b = appendCallResult(b, r)
	}
	return b, true
}

func sizeCallResult(r *pluginv1.CallResult) (int, bool) {
	if r == nil {
		return 0, false
	}
	switch x := r.Result.(type) {
	case nil:
		return 0, true
	case *pluginv1.CallResult_Error:
		return 1 + protowire.SizeBytes(len(x.Error)), true
	case *pluginv1.CallResult_Value:
		s, ok := sizeValue(x.Value, 0)
		return 1 + protowire.SizeBytes(s), ok
	}
	return 0, false
}

func appendCallResult(b []byte, r *pluginv1.CallResult) []byte {
	switch x := r.Result.(type) {
	case *pluginv1.CallResult_Error:
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, x.Error)
	case *pluginv1.CallResult_Value:
		s, _ := sizeValue(x.Value, 0)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(s))
		b = appendValue(b, x.Value)
	}
	return b
}

// sizeValue is the encoded size of v; false for what the fast path leaves to
// proto.Marshal (nil elements, deep nesting).
func sizeValue(v *oortv1.Value, depth int) (int, bool) {
	if v == nil || depth > maxFastDepth {
		return 0, false
	}
	switch x := v.Kind.(type) {
	case nil:
		return 0, true
	case *oortv1.Value_NullValue:
		return 1 + protowire.SizeVarint(uint64(int64(x.NullValue))), true
	case *oortv1.Value_BoolValue:
		return 2, true
	case *oortv1.Value_IntValue:
		return 1 + protowire.SizeVarint(uint64(x.IntValue)), true
	case *oortv1.Value_FloatValue:
		return 1 + 8, true
	case *oortv1.Value_StringValue:
		return 1 + protowire.SizeBytes(len(x.StringValue)), true
	case *oortv1.Value_BytesValue:
		return 1 + protowire.SizeBytes(len(x.BytesValue)), true
	case *oortv1.Value_TimestampValue:
		if x.TimestampValue == nil {
			return 0, false
		}
		return 1 + protowire.SizeBytes(sizeTimestamp(x.TimestampValue)), true
	case *oortv1.Value_ListValue:
		s, ok := sizeList(x.ListValue, depth)
		return 1 + protowire.SizeBytes(s), ok
	case *oortv1.Value_MapValue:
		s, ok := sizeMap(x.MapValue, depth)
		return 1 + protowire.SizeBytes(s), ok
	}
	return 0, false
}

// sizeList is the size of a ListValue's fields (without its own tag and length).
func sizeList(l *oortv1.ListValue, depth int) (int, bool) {
	if l == nil {
		return 0, false
	}
	s := 0
	for _, item := range l.Values {
		is, ok := sizeValue(item, depth+1)
		if !ok {
			return 0, false
		}
		s += 1 + protowire.SizeBytes(is)
	}
	return s, true
}

// sizeMap is the size of a MapValue's entries (without its own tag and length).
func sizeMap(m *oortv1.MapValue, depth int) (int, bool) {
	if m == nil {
		return 0, false
	}
	s := 0
	for k, item := range m.Fields {
		is, ok := sizeValue(item, depth+1)
		if !ok {
			return 0, false
		}
		s += 1 + protowire.SizeBytes(sizeEntry(k, is))
	}
	return s, true
}

func sizeTimestamp(ts *timestamppb.Timestamp) int {
	s := 0
	if ts.Seconds != 0 {
		s += 1 + protowire.SizeVarint(uint64(ts.Seconds))
	}
	if ts.Nanos != 0 {
		s += 1 + protowire.SizeVarint(uint64(int64(ts.Nanos)))
	}
	return s
}

func sizeEntry(key string, valueSize int) int {
	return 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(valueSize)
}

// appendValue encodes a Value that sizeValue accepted.
func appendValue(b []byte, v *oortv1.Value) []byte {
	switch x := v.Kind.(type) {
	case *oortv1.Value_NullValue:
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(x.NullValue)))
	case *oortv1.Value_BoolValue:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(x.BoolValue))
	case *oortv1.Value_IntValue:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(x.IntValue))
	case *oortv1.Value_FloatValue:
		b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(x.FloatValue))
	case *oortv1.Value_StringValue:
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendString(b, x.StringValue)
	case *oortv1.Value_BytesValue:
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, x.BytesValue)
	case *oortv1.Value_TimestampValue:
		ts := x.TimestampValue
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeTimestamp(ts)))
		if ts.Seconds != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(ts.Seconds))
		}
		if ts.Nanos != 0 {
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(ts.Nanos)))
		}
	case *oortv1.Value_ListValue:
		s, _ := sizeList(x.ListValue, 0)
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(s))
		for _, item := range x.ListValue.Values {
			is, _ := sizeValue(item, 0)
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(is))
			b = appendValue(b, item)
		}
	case *oortv1.Value_MapValue:
		s, _ := sizeMap(x.MapValue, 0)
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(s))
		for k, item := range x.MapValue.Fields {
			is, _ := sizeValue(item, 0)
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(sizeEntry(k, is)))
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(is))
			b = appendValue(b, item)
		}
	}
	return b
}
