// Command godemo is an example Oort portable plugin written with the Go SDK:
// the functions go_reverse, go_max (aggregate) and go_div, the source goticker
// and the sink gofile. It is meant to be started by oortd; package it with
// ./package.sh <out.zip> <debug|release>.
package main

import sdk "github.com/oort-edge/oort/plugins/go"

// Name and version, the same as in manifest.json.
const (
	name    = "godemo"
	version = "1.0.0"
)

func plugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    name,
		Version: version,
		Functions: []sdk.FunctionDef{
			{Name: "go_reverse", Description: "Reverses a string (by Unicode code point)", Function: reverse{}},
			{Name: "go_max", Description: "Aggregate: the largest number of a group", Function: maximum{}},
			{Name: "go_div", Description: "Integer division; a zero divisor panics on purpose (the SDK makes it a row error)", Function: div{}},
		},
		Sources: []sdk.SourceDef{
			{Name: "goticker", Description: `Emits {"tick": n} every interval_ms (default 100), up to count if set; both also in DATASOURCE as name?interval_ms=50&count=10`,
				New: func() sdk.Source { return &ticker{} }},
		},
		Sinks: []sdk.SinkDef{
			{Name: "gofile", Description: "Appends each event's fields as one JSON line to the file at path",
				New: func() sdk.Sink { return &fileSink{} }},
		},
	}
}

func main() {
	sdk.Serve(plugin())
}
