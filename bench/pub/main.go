// benchpub publishes every line of a file as one message to MQTT, NATS or
// Kafka, as fast as it can (or at -rate messages a second), in order, over one
// connection, and prints how long it took. Used by bench/side_by_side.py.
//
//	benchpub -proto mqtt  -addr tcp://127.0.0.1:1883 -topic in  -file in.jsonl
//	benchpub -proto nats  -addr nats://127.0.0.1:4222 -topic in -file in.jsonl
//	benchpub -proto kafka -addr 127.0.0.1:9092       -topic in  -file in.jsonl
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopic has the broker create topic (auto-creation, one partition) and
// waits until the partition has a leader.
func createTopic(addr, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		req := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, t)
		req.AllowAutoTopicCreation = true
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 &&
			len(resp.Topics[0].Partitions) > 0 && resp.Topics[0].Partitions[0].Leader >= 0 {
			return
		}
		if time.Now().After(deadline) {
			log.Fatalf("topic %s not ready: %v", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func main() {
	proto := flag.String("proto", "mqtt", "mqtt, nats or kafka")
	addr := flag.String("addr", "", "broker address")
	topic := flag.String("topic", "in", "topic or subject")
	file := flag.String("file", "", "JSON lines to publish, one message a line")
	rate := flag.Float64("rate", 0, "messages a second (0: as fast as possible)")
	qos := flag.Int("qos", 0, "mqtt QoS")
	create := flag.Bool("create", false, "kafka: create the topic (one partition) and wait for its leader, publish nothing")
	flag.Parse()
	if *create {
		createTopic(*addr, *topic)
		return
	}

	data, err := os.ReadFile(*file)
	if err != nil {
		log.Fatal(err)
	}
	var lines [][]byte
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			lines = append(lines, l)
		}
	}
	var pace func(i int)
	start := time.Now()
	if *rate > 0 {
		pace = func(i int) {
			if i%100 == 0 {
				due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
		}
	} else {
		pace = func(int) {}
	}

	switch *proto {
	case "mqtt":
		opts := mqtt.NewClientOptions().AddBroker(*addr).SetClientID(fmt.Sprintf("benchpub-%d", os.Getpid())).
			SetCleanSession(true).SetAutoReconnect(false).SetWriteTimeout(0).SetMaxResumePubInFlight(0)
		c := mqtt.NewClient(opts)
		if t := c.Connect(); t.Wait() && t.Error() != nil {
			log.Fatal(t.Error())
		}
		start = time.Now()
		var last mqtt.Token
		for i, l := range lines {
			pace(i)
			last = c.Publish(*topic, byte(*qos), false, l)
			if *qos > 0 && i%1000 == 999 {
				last.Wait()
			}
		}
		if last != nil {
			last.Wait()
		}
		// QoS 0 has no ack: a round trip at QoS 1 makes sure every earlier
		// message has left this client and reached the broker.
		if t := c.Publish(*topic+"/done", 1, false, []byte("{}")); t.Wait() && t.Error() != nil {
			log.Fatal(t.Error())
		}
		c.Disconnect(250)
	case "nats":
		nc, err := nats.Connect(*addr, nats.ReconnectBufSize(-1))
		if err != nil {
			log.Fatal(err)
		}
		start = time.Now()
		for i, l := range lines {
			pace(i)
			if err := nc.Publish(*topic, l); err != nil {
				log.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			log.Fatal(err)
		}
		nc.Close()
	case "kafka":
		cl, err := kgo.NewClient(kgo.SeedBrokers(*addr), kgo.DefaultProduceTopic(*topic),
			kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20),
			kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.AllowAutoTopicCreation(), kgo.MaxBufferedRecords(100000))
		if err != nil {
			log.Fatal(err)
		}
		ctx := context.Background()
		start = time.Now()
		var failed error
		for i, l := range lines {
			pace(i)
			cl.Produce(ctx, &kgo.Record{Value: l}, func(_ *kgo.Record, err error) {
				if err != nil && failed == nil {
					failed = err
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			log.Fatal(err)
		}
		if failed != nil {
			log.Fatal(failed)
		}
		cl.Close()
	default:
		log.Fatalf("unknown -proto %q", *proto)
	}
	el := time.Since(start).Seconds()
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "{\"messages\": %d, \"seconds\": %.3f, \"rate\": %.0f}\n", len(lines), el, float64(len(lines))/el)
	w.Flush()
}
