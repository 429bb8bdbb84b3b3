// The module path the protos' go_package names. Here the example is built offline against
// Debian's Go packages in GOPATH mode (`make clients-go`), so no requirements are pinned; with
// a module proxy, `go mod tidy` adds google.golang.org/grpc and google.golang.org/protobuf.
module github.com/seseragi/seseragi/clients/go

go 1.19
