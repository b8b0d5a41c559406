// A client's TLS settings, shared by the node, the load generator and their flags (a plain
// struct, so that their headers need neither gRPC nor the generated protocol code).
#pragma once

#include <string>

namespace splitinfer::runtime {

// `ca`: the PEM root certificate that signed the server's (empty: plain text). `cert`, `key`:
// the client's own certificate and key, for a server that requires client certificates
// (tls_client_ca), both or neither. runtime::ChannelCredentialsFor (wire.h) turns them into
// credentials; tools/python/oip_client.py takes the same three.
struct ClientTls {
  std::string ca, cert, key;
};

}  // namespace splitinfer::runtime
