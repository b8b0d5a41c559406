// splitinfer core: errors as values.
//
// Every boundary (parsers, file loaders, the CLI, later the wire) returns Status or Result<T>
// with a pinned ErrorCode, so callers and tests can act on *which* thing went wrong, not on
// message text. Modelled on absl::Status, reduced to what we need. No LibTorch here.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace splitinfer {

// Values are pinned: they may appear in logs, JSON and (later) on the wire. Append only.
enum class ErrorCode : int {
  kOk = 0,
  kInvalidArgument = 1,     // the caller passed something malformed (bad flag, bad config key)
  kNotFound = 2,            // a file, dataset, model or split name that does not exist
  kFailedPrecondition = 3,  // the system is not in a state to do this (e.g. CUDA on a CPU build)
  kDataLoss = 4,            // a file exists but its content is corrupt or truncated
  kUnimplemented = 5,       // a valid request that this build does not support
  kInternal = 6,            // an invariant broke inside a library we call (e.g. a c10::Error)
  kOutOfRange = 7,          // a number outside its documented limits
  kIo = 8,                  // the OS refused a read or write
  kMismatch = 9,            // two artifacts that must agree do not (checkpoint vs model)
  // The runtime (src/runtime): requests across the wire.
  kDeadlineExceeded = 10,   // a request's deadline passed before it was answered
  kResourceExhausted = 11,  // the server is full (in-flight limit) or a request exceeds a size limit
  kUnavailable = 12,        // the peer cannot be reached (not started, restarting, network down)
  kUnauthenticated = 13,    // a request without the server's bearer token
  // Frame decoding (docs/bitstream_format.md): one code per way a frame can be bad, so that
  // tests, logs and the server's replies can say exactly which.
  kFrameTruncated = 20,       // the buffer ends inside the header, side info, payload or CRC
  kFrameBadMagic = 21,        // not a splitinfer frame
  kFrameBadVersion = 22,      // a version this build does not decode
  kFrameBadShape = 23,        // rank, a dimension, the element count or the region tiling is outside its limits
  kFrameBadField = 24,        // an enum or flag value that is not defined (bits, coder, granularity, ...)
  kFrameLengthOverrun = 25,   // a declared length runs past the end of the buffer, or bytes are left over
  kFrameCrcMismatch = 26,     // the CRC32C does not match
  kFrameSideInfo = 27,        // side information has the wrong size or non-finite values
  kFramePayload = 28,         // the lossless payload does not decode to the declared symbol count
  kFrameSymbolRange = 29,     // a decoded symbol does not fit in the declared bit width
};

const char* ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NOT_FOUND: Fashion-MNIST not found at ... (install: apt-get install dataset-fashion-mnist)"
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {ErrorCode::kFailedPrecondition, std::move(m)}; }
inline Status DataLoss(std::string m) { return {ErrorCode::kDataLoss, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {ErrorCode::kUnimplemented, std::move(m)}; }
inline Status Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {ErrorCode::kOutOfRange, std::move(m)}; }
inline Status IoError(std::string m) { return {ErrorCode::kIo, std::move(m)}; }
inline Status Mismatch(std::string m) { return {ErrorCode::kMismatch, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {ErrorCode::kDeadlineExceeded, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {ErrorCode::kResourceExhausted, std::move(m)}; }
inline Status Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {ErrorCode::kUnauthenticated, std::move(m)}; }

// Either a value or a non-OK Status. Accessing value() of an error is a programming error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design, as absl::StatusOr
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "Result constructed from an OK status without a value");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace splitinfer

// Propagate a non-OK Status from an expression returning Status.
#define SI_RETURN_IF_ERROR(expr)                    \
  do {                                              \
    ::splitinfer::Status si_status_ = (expr);       \
    if (!si_status_.ok()) return si_status_;        \
  } while (0)

#define SI_CONCAT_INNER(a, b) a##b
#define SI_CONCAT(a, b) SI_CONCAT_INNER(a, b)
// `SI_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its Status.
#define SI_ASSIGN_OR_RETURN(lhs, rexpr) SI_ASSIGN_OR_RETURN_IMPL(SI_CONCAT(si_result_, __LINE__), lhs, rexpr)
#define SI_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                             \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
