// Command seseragi-stream streams one generation from Seseragi through Envoy and prints the
// text as it arrives, then the stop reason and token counts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	seseragiv1 "github.com/seseragi/seseragi/clients/go/gen/seseragi/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "Envoy's address (plaintext HTTP/2)")
	token := flag.String("token", os.Getenv("SESERAGI_TOKEN"), "bearer token (default $SESERAGI_TOKEN)")
	maxTokens := flag.Uint("max-tokens", 64, "most tokens to generate")
	temperature := flag.Float64("temperature", 0, "sampling temperature; 0 is greedy")
	seed := flag.Uint64("seed", 0, "sampling seed (0: the server picks one)")
	timeout := flag.Duration("timeout", 2*time.Minute, "deadline for the whole call")
	flag.Parse()
	if flag.NArg() != 1 || *token == "" {
		fmt.Fprintln(os.Stderr, "usage: seseragi-stream [flags] PROMPT   (with -token or $SESERAGI_TOKEN)")
		os.Exit(2)
	}
	request := &seseragiv1.GenerateStreamRequest{
		Messages: []*seseragiv1.ChatMessage{{Role: "user", Content: flag.Arg(0)}},
		Sampling: &seseragiv1.SamplingParams{Temperature: float32Ptr(float32(*temperature))},
		Stopping: &seseragiv1.StoppingCriteria{MaxNewTokens: uint32Ptr(uint32(*maxTokens))},
	}
	if *seed != 0 {
		request.Sampling.Seed = seed
	}
	if err := stream(*addr, *token, *timeout, request); err != nil {
		fmt.Fprintln(os.Stderr, "error:", describe(err))
		os.Exit(1)
	}
}

// stream calls GenerateStream and writes each delta to stdout the moment it arrives; Ctrl-C
// cancels the call, which stops the generation on the server.
func stream(addr, token string, timeout time.Duration, request *seseragiv1.GenerateStreamRequest) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Plaintext to Envoy on loopback; use grpc.WithTransportCredentials for a TLS edge.
	conn, err := grpc.DialContext(ctx, addr, grpc.WithInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	events, err := seseragiv1.NewGenerationServiceClient(conn).GenerateStream(ctx, request)
	if err != nil {
		return err
	}
	for {
		event, err := events.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if delta := event.GetDelta(); delta != nil {
			fmt.Print(delta.GetText())
		}
		if final := event.GetFinal(); final != nil {
			usage := final.GetUsage()
			fmt.Printf("\n[%s, %d input tokens, %d output tokens]\n",
				strings.TrimPrefix(final.GetStopReason().String(), "STOP_REASON_"),
				usage.GetInputTokens(), usage.GetOutputTokens())
		}
	}
}

// describe names the gRPC code, so a refused token or a rate limit reads as such.
func describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	return err.Error()
}

func float32Ptr(v float32) *float32 { return &v }
func uint32Ptr(v uint32) *uint32    { return &v }
