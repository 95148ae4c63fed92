package main

// The plugin's own tests, through the SDK's harness: each symbol is called over
// the real protocol, in this process, without oortd.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/oort-edge/oort/plugins/go"
	"github.com/oort-edge/oort/plugins/go/sdktest"
)

func TestFunctions(t *testing.T) {
	h := sdktest.Start(t, plugin())

	got, err := h.Call("go_reverse", []any{"abc"}, []any{"日本"}, []any{nil}, []any{1.5})
	if err != nil {
		t.Fatal(err)
	}
	want := []sdktest.Result{{Value: "cba"}, {Value: "本日"}, {}, {Err: "go_reverse expects a string, got float64"}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("go_reverse row %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	got, err = h.Call("go_max",
		[]any{[]any{int64(1), int64(7), int64(3)}},
		[]any{[]any{int64(7), 7.5, nil}},
		[]any{[]any{int64(9), 1.5}},
		[]any{[]any{nil}},
		[]any{[]any{int64(math64), int64(math64 - 1)}})
	if err != nil {
		t.Fatal(err)
	}
	want = []sdktest.Result{{Value: int64(7)}, {Value: 7.5}, {Value: 9.0}, {}, {Value: int64(math64)}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("go_max row %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	got, err = h.Call("go_div", []any{int64(7), int64(2)}, []any{int64(7), int64(0)}, []any{"7", int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Value != int64(3) || !strings.Contains(got[1].Err, "integer divide by zero") ||
		!strings.Contains(got[2].Err, "expects two BIGINTs") {
		t.Errorf("go_div: %+v", got)
	}

	if _, err := h.CallN("go_div", 3); err == nil || !strings.Contains(err.Error(), "go_div takes 2 arguments") {
		t.Errorf("go_div with 3 arguments: %v", err)
	}
}

// math64 is the largest BIGINT, which a float64 cannot tell from its neighbour.
const math64 = 1<<63 - 1

func TestTicker(t *testing.T) {
	h := sdktest.Start(t, plugin())
	events, err := h.ReadSource("goticker", "d", map[string]any{"interval_ms": 5, "count": 3}, 3, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		if e.Fields["tick"] != int64(i+1) || e.Meta["datasource"] != "d" {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	// Settings in the DATASOURCE win over the configuration.
	start := time.Now()
	events, err = h.ReadSource("goticker", "d2?interval_ms=40&count=2", map[string]any{"interval_ms": 5}, 2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 80*time.Millisecond || events[1].Meta["datasource"] != "d2" {
		t.Errorf("2 ticks in %v, events %+v", elapsed, events)
	}
	if _, err := h.ReadSource("goticker", "", map[string]any{"interval_ms": 0}, 1, 5*time.Second); err == nil {
		t.Error("interval_ms 0 is refused")
	}
}

func TestFileSink(t *testing.T) {
	h := sdktest.Start(t, plugin())
	path := filepath.Join(t.TempDir(), "out.jsonl")
	acks, err := h.WriteSink("gofile", map[string]any{"path": path},
		[]sdk.Event{{Fields: map[string]any{"b": "x", "a": int64(1)}}},
		[]sdk.Event{{Fields: map[string]any{"t": time.Unix(0, 0).UTC(), "raw": []byte("hi")}}, {Fields: map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 2 || acks[0] != "" || acks[1] != "" {
		t.Fatalf("acks %q", acks)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"a\":1,\"b\":\"x\"}\n{\"raw\":\"aGk=\",\"t\":\"1970-01-01T00:00:00Z\"}\n{}\n"
	if string(data) != want {
		t.Fatalf("file %q, want %q", data, want)
	}
	if _, err := h.WriteSink("gofile", map[string]any{}); err == nil || !strings.Contains(err.Error(), "path") {
		t.Errorf("no path: %v", err)
	}
}
