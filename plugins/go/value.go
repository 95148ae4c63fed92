package sdk

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

// FromValue converts an oort.v1.Value to its natural Go value: nil (NULL or an
// unset kind), bool, int64, float64, string, []byte, time.Time (UTC), []any
// (ARRAY) or map[string]any (STRUCT).
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
		if x.BytesValue == nil {
			return []byte{}
		}
		return x.BytesValue
	case *oortv1.Value_TimestampValue:
		return x.TimestampValue.AsTime()
	case *oortv1.Value_ListValue:
		values := x.ListValue.GetValues()
		out := make([]any, len(values))
		for i, item := range values {
			out[i] = FromValue(item)
		}
		return out
	case *oortv1.Value_MapValue:
		return fromFields(x.MapValue.GetFields())
	default: // NullValue, or no kind
		return nil
	}
}

func fromFields(fields map[string]*oortv1.Value) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		out[k] = FromValue(v)
	}
	return out
}

var (
	nullValue  = &oortv1.Value{Kind: &oortv1.Value_NullValue{}}
	timeType   = reflect.TypeFor[time.Time]()
	valueType  = reflect.TypeFor[*oortv1.Value]()
	stringType = reflect.TypeFor[string]()
)

// ToValue converts a Go value to an oort.v1.Value: nil, bool, every integer
// type (a uint64 above math.MaxInt64 is an error), float32/float64, string,
// []byte, time.Time, json.Number, a *oortv1.Value as it is, a pointer (nil is
// NULL), and any slice or array (ARRAY) or map with string keys (STRUCT) of
// convertible values, such as []any, []string, map[string]any.
func ToValue(v any) (*oortv1.Value, error) {
	switch x := v.(type) {
	case nil:
		return nullValue, nil
	case *oortv1.Value:
		if x == nil {
			return nullValue, nil
		}
		return x, nil
	case bool:
		return &oortv1.Value{Kind: &oortv1.Value_BoolValue{BoolValue: x}}, nil
	case int64:
		return intValue(x), nil
	case int:
		return intValue(int64(x)), nil
	case int32:
		return intValue(int64(x)), nil
	case float64:
		return floatValue(x), nil
	case string:
		return &oortv1.Value{Kind: &oortv1.Value_StringValue{StringValue: x}}, nil
	case []byte:
		return &oortv1.Value{Kind: &oortv1.Value_BytesValue{BytesValue: x}}, nil
	case time.Time:
		return &oortv1.Value{Kind: &oortv1.Value_TimestampValue{TimestampValue: timestamppb.New(x)}}, nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return intValue(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("cannot convert json.Number %q to a Value", x.String())
		}
		return floatValue(f), nil
	case []any:
		list := make([]*oortv1.Value, len(x))
		for i, item := range x {
			value, err := ToValue(item)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			list[i] = value
		}
		return listValue(list), nil
	case map[string]any:
		fields, err := toFields(x)
		if err != nil {
			return nil, err
		}
		return &oortv1.Value{Kind: &oortv1.Value_MapValue{MapValue: &oortv1.MapValue{Fields: fields}}}, nil
	}
	return reflectValue(reflect.ValueOf(v))
}

// reflectValue converts the kinds that the type switch of ToValue does not name.
func reflectValue(rv reflect.Value) (*oortv1.Value, error) {
	if rv.Type() == timeType {
		return ToValue(rv.Interface())
	}
	if rv.Type() == valueType {
		return ToValue(rv.Interface())
	}
	switch rv.Kind() {
	case reflect.Bool:
		return &oortv1.Value{Kind: &oortv1.Value_BoolValue{BoolValue: rv.Bool()}}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intValue(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return nil, fmt.Errorf("cannot convert %d to a Value: above the largest BIGINT", u)
		}
		return intValue(int64(u)), nil
	case reflect.Float32, reflect.Float64:
		return floatValue(rv.Float()), nil
	case reflect.String:
		return &oortv1.Value{Kind: &oortv1.Value_StringValue{StringValue: rv.String()}}, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nullValue, nil
		}
		return reflectValue(rv.Elem())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			return &oortv1.Value{Kind: &oortv1.Value_BytesValue{BytesValue: rv.Bytes()}}, nil
		}
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nullValue, nil
		}
		list := make([]*oortv1.Value, rv.Len())
		for i := range list {
			value, err := reflectValue(rv.Index(i))
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			list[i] = value
		}
		return listValue(list), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("cannot convert %s to a Value: map keys must be strings", rv.Type())
		}
		if rv.IsNil() {
			return nullValue, nil
		}
		fields := make(map[string]*oortv1.Value, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			key := iter.Key().Convert(stringType).String()
			value, err := reflectValue(iter.Value())
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", key, err)
			}
			fields[key] = value
		}
		return &oortv1.Value{Kind: &oortv1.Value_MapValue{MapValue: &oortv1.MapValue{Fields: fields}}}, nil
	}
	return nil, fmt.Errorf("cannot convert %s to a Value", rv.Type())
}

func intValue(v int64) *oortv1.Value {
	return &oortv1.Value{Kind: &oortv1.Value_IntValue{IntValue: v}}
}

func floatValue(v float64) *oortv1.Value {
	return &oortv1.Value{Kind: &oortv1.Value_FloatValue{FloatValue: v}}
}

func listValue(values []*oortv1.Value) *oortv1.Value {
	return &oortv1.Value{Kind: &oortv1.Value_ListValue{ListValue: &oortv1.ListValue{Values: values}}}
}

func toFields(row map[string]any) (map[string]*oortv1.Value, error) {
	fields := make(map[string]*oortv1.Value, len(row))
	for k, v := range row {
		value, err := ToValue(v)
		if err != nil {
			return nil, firstFieldError(row)
		}
		fields[k] = value
	}
	return fields, nil
}

// firstFieldError reports the failing field with the smallest name, so that the
// error is the same whatever the map's iteration order. Only the error path
// sorts.
func firstFieldError(row map[string]any) error {
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := ToValue(row[k]); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	return nil
}

// ToEvent converts an Event to an oort.v1.Event.
func ToEvent(e Event) (*oortv1.Event, error) {
	fields, err := toFields(e.Fields)
	if err != nil {
		return nil, err
	}
	out := &oortv1.Event{Fields: fields, Meta: e.Meta}
	if !e.Timestamp.IsZero() {
		out.Timestamp = timestamppb.New(e.Timestamp)
	}
	return out, nil
}

// FromEvent converts an oort.v1.Event to an Event.
func FromEvent(e *oortv1.Event) Event {
	out := Event{Fields: fromFields(e.GetFields()), Meta: e.GetMeta()}
	if e.GetTimestamp() != nil {
		out.Timestamp = e.GetTimestamp().AsTime()
	}
	if out.Meta == nil {
		out.Meta = map[string]string{}
	}
	return out
}

// configMap converts a google.protobuf.Struct (stream options, action
// properties) to Go values as JSON would: numbers are float64.
func configMap(s *structpb.Struct) map[string]any {
	if s == nil {
		return map[string]any{}
	}
	return s.AsMap()
}

// IntProp reads an integer property: an int or a float64 without fraction (as
// numbers come from the configuration), or a string of digits. A missing or
// null property gives def.
func IntProp(props map[string]any, key string, def int64) (int64, error) {
	v, ok := props[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("property %q: %v is not an integer", key, x)
		}
		return int64(x), nil
	case string:
		i, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("property %q: %q is not an integer", key, x)
		}
		return i, nil
	}
	return 0, fmt.Errorf("property %q: %T is not an integer", key, v)
}

// FloatProp reads a number property (or a string that parses as one); a missing
// or null property gives def.
func FloatProp(props map[string]any, key string, def float64) (float64, error) {
	v, ok := props[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, fmt.Errorf("property %q: %q is not a number", key, x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("property %q: %T is not a number", key, v)
}

// StringProp reads a string property; a missing or null property gives def.
func StringProp(props map[string]any, key string, def string) (string, error) {
	v, ok := props[key]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("property %q: %T is not a string", key, v)
	}
	return s, nil
}

// BoolProp reads a boolean property (or "true"/"false"); a missing or null
// property gives def.
func BoolProp(props map[string]any, key string, def bool) (bool, error) {
	v, ok := props[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, fmt.Errorf("property %q: %q is not a boolean", key, x)
		}
		return b, nil
	}
	return false, fmt.Errorf("property %q: %T is not a boolean", key, v)
}

// DatasourceOptions splits a stream's DATASOURCE of the form
// "name?key=value&key2=value2" (the way Oort's sources take settings that the
// stream's WITH options have no place for) into the name and the properties:
// props with each query parameter added as a string, a parameter given in the
// DATASOURCE winning over the same key in props. props is not modified.
func DatasourceOptions(datasource string, props map[string]any) (string, map[string]any, error) {
	merged := make(map[string]any, len(props))
	for k, v := range props {
		merged[k] = v
	}
	name, query, found := strings.Cut(datasource, "?")
	if !found {
		return datasource, merged, nil
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return "", nil, fmt.Errorf("DATASOURCE %q: %w", datasource, err)
	}
	for k, v := range values {
		merged[k] = v[len(v)-1]
	}
	return name, merged, nil
}
