// The client scenario, timed (see ../scenario.py), with the Go client.
// ROUNDS rounds on one client, the milliseconds of each printed one a line.
// Usage: go run . ADDRESS NAME [ROUNDS]
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	oort "github.com/oort-edge/oort/clients/go"
	oortv1 "github.com/oort-edge/oort/clients/go/gen/oort/v1"
)

const events = 1000

func main() {
	address, name := os.Args[1], os.Args[2]
	rounds := 1
	if len(os.Args) > 3 {
		var err error
		if rounds, err = strconv.Atoi(os.Args[3]); err != nil {
			log.Fatal(err)
		}
	}
	c, err := oort.Dial(address)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for round := 0; round < rounds; round++ {
		elapsed := scenario(c, fmt.Sprintf("%s_%d", name, round))
		fmt.Printf("%.1f\n", float64(elapsed.Microseconds())/1000)
	}
}

// scenario runs the scenario once and returns how long it took.
func scenario(c *oort.Client, name string) time.Duration {
	ctx := context.Background()
	started := time.Now()
	if _, err := c.CreateStream(ctx, fmt.Sprintf(`CREATE STREAM %s (t BIGINT) WITH (TYPE="grpc", DATASOURCE="%s")`, name, name)); err != nil {
		log.Fatal(err)
	}
	if _, err := c.CreateRule(ctx, name, "SELECT t FROM "+name, "grpc"); err != nil {
		log.Fatal(err)
	}
	tail, err := c.TailRule(ctx, name)
	if err != nil {
		log.Fatal(err)
	}
	rows := make([]map[string]any, events)
	for i := range rows {
		rows[i] = map[string]any{"t": int64(i)}
	}
	if _, err := c.Publish(ctx, name, rows...); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < events; i++ {
		row, err := tail.Next()
		if err != nil {
			log.Fatal(err)
		}
		if row["t"] != int64(i) {
			log.Fatalf("result %d: %v", i, row)
		}
	}
	elapsed := time.Since(started)
	// Untimed: every round starts from the same catalog.
	tail.Close()
	if _, err := c.Rules.DeleteRule(ctx, &oortv1.DeleteRuleRequest{Id: name}); err != nil {
		log.Fatal(err)
	}
	if err := c.DeleteStream(ctx, name); err != nil {
		log.Fatal(err)
	}
	return elapsed
}
