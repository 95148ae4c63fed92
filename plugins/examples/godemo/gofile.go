package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	sdk "github.com/oort-edge/oort/plugins/go"
)

// fileSink is the sink gofile: it appends each event's fields to the file at
// the property path as one JSON object per line (bytes in base64, timestamps
// in RFC 3339), and acknowledges a batch once it is written.
type fileSink struct {
	path string
	file *os.File
}

func (s *fileSink) Configure(props map[string]any) error {
	path, err := sdk.StringProp(props, "path", "")
	if err != nil {
		return err
	}
	if path == "" {
		return errors.New(`gofile needs the property "path"`)
	}
	s.path = path
	return nil
}

func (s *fileSink) Open(sdk.StreamContext) error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	s.file = f
	return nil
}

func (s *fileSink) Collect(_ sdk.StreamContext, events []sdk.Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i, e := range events {
		if err := enc.Encode(e.Fields); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	// One write per batch, so a batch is either appended whole or refused.
	if _, err := s.file.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	return nil
}

func (s *fileSink) Close(sdk.StreamContext) error {
	if s.file == nil {
		return nil
	}
	return s.file.Close()
}
