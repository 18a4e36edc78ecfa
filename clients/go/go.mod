module github.com/assistants-grpc/assistants-grpc/clients/go

go 1.19

// The minimum versions are the ones the client is built and tested against
// (Debian bookworm's packages, see scripts/go-gopath-build.sh); newer releases
// of both work with this generated code.
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
