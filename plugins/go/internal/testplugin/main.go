// Command testplugin is a plugin that misbehaves on purpose, for the SDK's
// process tests: t_print writes to stdout, which only the handshake may use.
package main

import (
	"fmt"
	"strings"

	sdk "github.com/oort-edge/oort/plugins/go"
)

type printer struct{}

func (printer) Validate(args []any) error { return sdk.ArgCount(args, 0) }
func (printer) IsAggregate() bool         { return false }

// Exec prints 256 KiB to stdout: more than a pipe holds, so the call would
// block if stdout were still the pipe that the server stopped reading.
func (printer) Exec(sdk.FunctionContext, []any) (any, error) {
	fmt.Println("testplugin: stray print " + strings.Repeat("x", 256<<10))
	return "printed", nil
}

func main() {
	sdk.Serve(&sdk.Plugin{Name: "testplugin", Version: "0.0.1",
		Functions: []sdk.FunctionDef{{Name: "t_print", Function: printer{}}}})
}
