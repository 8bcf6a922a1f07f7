//! The edge: JSON transcoding, grpc-web and gRPC passthrough with auth, rate limits and OpenAPI.
