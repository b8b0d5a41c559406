#include "core/status.h"

namespace splitinfer {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kNotFound: return "NOT_FOUND";
    case ErrorCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case ErrorCode::kDataLoss: return "DATA_LOSS";
    case ErrorCode::kUnimplemented: return "UNIMPLEMENTED";
    case ErrorCode::kInternal: return "INTERNAL";
    case ErrorCode::kOutOfRange: return "OUT_OF_RANGE";
    case ErrorCode::kIo: return "IO_ERROR";
    case ErrorCode::kMismatch: return "MISMATCH";
    case ErrorCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kUnavailable: return "UNAVAILABLE";
    case ErrorCode::kUnauthenticated: return "UNAUTHENTICATED";
    case ErrorCode::kFrameTruncated: return "FRAME_TRUNCATED";
    case ErrorCode::kFrameBadMagic: return "FRAME_BAD_MAGIC";
    case ErrorCode::kFrameBadVersion: return "FRAME_BAD_VERSION";
    case ErrorCode::kFrameBadShape: return "FRAME_BAD_SHAPE";
    case ErrorCode::kFrameBadField: return "FRAME_BAD_FIELD";
    case ErrorCode::kFrameLengthOverrun: return "FRAME_LENGTH_OVERRUN";
    case ErrorCode::kFrameCrcMismatch: return "FRAME_CRC_MISMATCH";
    case ErrorCode::kFrameSideInfo: return "FRAME_SIDE_INFO";
    case ErrorCode::kFramePayload: return "FRAME_PAYLOAD";
    case ErrorCode::kFrameSymbolRange: return "FRAME_SYMBOL_RANGE";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(ErrorCodeName(code_)) + ": " + message_;
}

}  // namespace splitinfer
