package main

import (
	"fmt"
	"time"

	sdk "github.com/oort-edge/oort/plugins/go"
)

// ticker is the source goticker: {"tick": 1}, {"tick": 2}, ... every
// interval_ms milliseconds (default 100), stopping after count events if count
// is set and positive. Both come from the stream's configuration or from its
// DATASOURCE, as in "name?interval_ms=50&count=10" (which wins). The name part
// of the DATASOURCE is in each event's meta, as "datasource".
type ticker struct {
	interval   time.Duration
	count      int64
	datasource string
}

func (t *ticker) Configure(datasource string, props map[string]any) error {
	datasource, props, err := sdk.DatasourceOptions(datasource, props)
	if err != nil {
		return err
	}
	ms, err := sdk.IntProp(props, "interval_ms", 100)
	if err != nil {
		return err
	}
	if ms <= 0 {
		return fmt.Errorf("interval_ms must be positive, got %d", ms)
	}
	if t.count, err = sdk.IntProp(props, "count", 0); err != nil {
		return err
	}
	t.interval = time.Duration(ms) * time.Millisecond
	t.datasource = datasource
	return nil
}

func (t *ticker) Open(ctx sdk.StreamContext, emit sdk.Emit) error {
	clock := time.NewTicker(t.interval)
	defer clock.Stop()
	for n := int64(1); t.count <= 0 || n <= t.count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case now := <-clock.C:
			err := emit(sdk.Event{
				Fields:    map[string]any{"tick": n},
				Timestamp: now,
				Meta:      map[string]string{"datasource": t.datasource},
			})
			if err != nil {
				return nil // the stream is gone
			}
		}
	}
	ctx.Logger().Info("goticker reached its count", "count", t.count)
	return nil
}

func (t *ticker) Close(sdk.StreamContext) error { return nil }
