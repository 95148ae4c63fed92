package main

import (
	"fmt"
	"math"

	sdk "github.com/oort-edge/oort/plugins/go"
)

// reverse is go_reverse(s): s with its code points in reverse order; NULL stays NULL.
type reverse struct{}

func (reverse) Validate(args []any) error {
	if len(args) != 1 {
		return fmt.Errorf("go_reverse takes 1 argument, got %d", len(args))
	}
	return nil
}

func (reverse) Exec(_ sdk.FunctionContext, args []any) (any, error) {
	switch s := args[0].(type) {
	case nil:
		return nil, nil
	case string:
		runes := []rune(s)
		for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
			runes[i], runes[j] = runes[j], runes[i]
		}
		return string(runes), nil
	default:
		return nil, fmt.Errorf("go_reverse expects a string, got %T", s)
	}
}

func (reverse) IsAggregate() bool { return false }

// maximum is go_max(x), an aggregate: the largest number of the group, a BIGINT
// if every value is one, else a FLOAT. NULLs are skipped; no number gives NULL.
type maximum struct{}

func (maximum) Validate(args []any) error {
	if len(args) != 1 {
		return fmt.Errorf("go_max takes 1 argument, got %d", len(args))
	}
	return nil
}

func (maximum) Exec(_ sdk.FunctionContext, args []any) (any, error) {
	group, ok := args[0].([]any)
	if !ok {
		return nil, fmt.Errorf("go_max expects the group's values as a list, got %T", args[0])
	}
	var best any // int64 or float64; nil until the first number
	allInts := true
	for _, v := range group {
		switch x := v.(type) {
		case nil:
			continue
		case int64:
		case float64:
			if math.IsNaN(x) {
				return nil, fmt.Errorf("go_max: NaN in the group")
			}
			allInts = false
		default:
			return nil, fmt.Errorf("go_max expects numbers, got %T", v)
		}
		if best == nil || greater(v, best) {
			best = v
		}
	}
	if i, ok := best.(int64); ok && !allInts {
		return float64(i), nil
	}
	return best, nil
}

// greater compares two numbers, BIGINTs exactly.
func greater(a, b any) bool {
	ai, aInt := a.(int64)
	bi, bInt := b.(int64)
	if aInt && bInt {
		return ai > bi
	}
	return asFloat(a) > asFloat(b)
}

func asFloat(v any) float64 {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	return v.(float64)
}

func (maximum) IsAggregate() bool { return true }

// div is go_div(a, b): a / b on BIGINTs. Dividing by zero is a Go run-time
// panic, left in on purpose to show that the SDK turns it into the error of
// that row only.
type div struct{}

func (div) Validate(args []any) error {
	if len(args) != 2 {
		return fmt.Errorf("go_div takes 2 arguments, got %d", len(args))
	}
	return nil
}

func (div) Exec(_ sdk.FunctionContext, args []any) (any, error) {
	a, okA := args[0].(int64)
	b, okB := args[1].(int64)
	if !okA || !okB {
		return nil, fmt.Errorf("go_div expects two BIGINTs, got %T and %T", args[0], args[1])
	}
	return a / b, nil
}

func (div) IsAggregate() bool { return false }
