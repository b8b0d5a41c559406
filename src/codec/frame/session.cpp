#include "codec/frame/session.h"

#include <cstdio>
#include <string>

#include "core/bytes.h"

namespace splitinfer::codec {
namespace {

constexpr uint32_t kCrc24Mask = 0xFFFFFF;

uint32_t SessionCrc(uint32_t key, const uint8_t* side_info, size_t side_info_size, const uint8_t* payload,
                    size_t payload_size) {
  uint8_t key_bytes[4];
  for (int i = 0; i < 4; ++i) key_bytes[i] = static_cast<uint8_t>(key >> (8 * i));
  uint32_t crc = Crc32c(key_bytes, sizeof key_bytes);
  crc = Crc32c(side_info, side_info_size, crc);
  return Crc32c(payload, payload_size, crc) & kCrc24Mask;
}

}  // namespace

Result<uint32_t> SessionKey(const FrameHeader& header) {
  // Zero side information of the implied size: only its length is part of the header.
  const std::vector<uint8_t> side(static_cast<size_t>(ExpectedSideInfoSize(header)), 0);
  SI_ASSIGN_OR_RETURN(auto frame, WriteFrame(header, side.data(), side.size(), nullptr, 0));
  const size_t header_bytes = HeaderSize(header, 0);
  return Crc32c(frame.data(), header_bytes);
}

Result<Session> OpenSession(const FrameHeader& header) {
  Session s;
  s.header = header;
  SI_ASSIGN_OR_RETURN(s.key, SessionKey(header));
  return s;
}

Result<std::vector<uint8_t>> WriteSessionFrame(const Session& session, const uint8_t* side_info, size_t side_info_size,
                                               const uint8_t* payload, size_t payload_size) {
  const uint64_t expected = ExpectedSideInfoSize(session.header);
  if (side_info_size != expected) {
    return InvalidArgument("session frame with " + std::to_string(side_info_size) +
                           " bytes of side information; the session's header implies " + std::to_string(expected));
  }
  std::vector<uint8_t> out;
  out.reserve(kSessionFrameOverhead + side_info_size + payload_size);
  out.push_back(kSessionFrameTag);
  const uint32_t crc = SessionCrc(session.key, side_info, side_info_size, payload, payload_size);
  for (int i = 0; i < 3; ++i) out.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  if (side_info_size > 0) out.insert(out.end(), side_info, side_info + side_info_size);
  if (payload_size > 0) out.insert(out.end(), payload, payload + payload_size);
  return out;
}

Result<std::vector<uint8_t>> SessionFrameOf(const Session& session, const uint8_t* frame, size_t size) {
  SI_ASSIGN_OR_RETURN(const FrameView view, ParseFrame(frame, size));
  SI_ASSIGN_OR_RETURN(const uint32_t key, SessionKey(view.header));
  if (key != session.key) {
    return Status(ErrorCode::kMismatch,
                  "the frame's header (shape, quantizer, coder or pipeline) differs from the one that opened the "
                  "session: send it as a full frame to open a new session");
  }
  return WriteSessionFrame(session, view.side_info, view.side_info_size, view.payload, view.payload_size);
}

Result<size_t> SessionFrameSize(const uint8_t* frame, size_t size) {
  SI_ASSIGN_OR_RETURN(const FrameView view, ParseFrame(frame, size));
  return kSessionFrameOverhead + view.side_info_size + view.payload_size;
}

Result<FrameView> ParseSessionFrame(const Session& session, const uint8_t* data, size_t size,
                                    const FrameLimits& limits) {
  if (size == 0) return Status(ErrorCode::kFrameTruncated, "empty session frame (no bytes at all)");
  if (data[0] != kSessionFrameTag) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", data[0]);
    return Status(ErrorCode::kFrameBadMagic, "not a session frame: first byte " + std::string(hex) +
                                                 ", expected 0xF6 (a full frame starts with 0xF5)");
  }
  const uint64_t side_len = ExpectedSideInfoSize(session.header);
  if (size < kSessionFrameOverhead + side_len) {
    return Status(ErrorCode::kFrameTruncated,
                  "session frame of " + std::to_string(size) + " bytes; the tag, CRC and side information alone take " +
                      std::to_string(kSessionFrameOverhead + side_len));
  }
  if (size > limits.max_frame_bytes) {
    return Status(ErrorCode::kFrameLengthOverrun, "session frame of " + std::to_string(size) +
                                                      " bytes is over the limit of " +
                                                      std::to_string(limits.max_frame_bytes));
  }
  FrameView view;
  view.header = session.header;
  view.side_info = data + kSessionFrameOverhead;
  view.side_info_size = static_cast<size_t>(side_len);
  view.payload = view.side_info + side_len;
  view.payload_size = size - kSessionFrameOverhead - static_cast<size_t>(side_len);
  const uint32_t stored = uint32_t{data[1]} | uint32_t{data[2]} << 8 | uint32_t{data[3]} << 16;
  const uint32_t computed =
      SessionCrc(session.key, view.side_info, view.side_info_size, view.payload, view.payload_size);
  if (stored != computed) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "stored 0x%06X, computed 0x%06X", stored, computed);
    return Status(ErrorCode::kFrameCrcMismatch, std::string("session frame CRC-24 mismatch (") + buf +
                                                    "): corrupt, or coded under another session's header");
  }
  SI_RETURN_IF_ERROR(CheckSideInfoValues(view.side_info, view.side_info_size));
  return view;
}

}  // namespace splitinfer::codec
