package sdk_test

import (
	"strings"

	sdk "github.com/oort-edge/oort/plugins/go"
)

// The README's example, compiled by go test (not run: Serve waits for oortd).

type upper struct{}

func (upper) Validate(args []any) error { return sdk.ArgCount(args, 1) }
func (upper) IsAggregate() bool         { return false }
func (upper) Exec(_ sdk.FunctionContext, args []any) (any, error) {
	s, _ := args[0].(string)
	return strings.ToUpper(s), nil
}

func Example() {
	sdk.Serve(&sdk.Plugin{Name: "mine", Version: "1.0.0",
		Functions: []sdk.FunctionDef{{Name: "my_upper", Function: upper{}}}})
}
