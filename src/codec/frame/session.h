// codec/frame/session: frames inside a session, which carry only what varies. No LibTorch.
// The normative description is docs/bitstream_format.md, "Session frames".
//
// A session is opened by a full frame (frame.h): its header (version, pipeline id, shape,
// quantizer, coder) holds for every later frame of the session, which therefore carries only
//
//   +------+--------+-----------+---------+
//   | 0xF6 | CRC-24 | side info | payload |
//   | 1 B  |  3 B   | side_len  |  rest   |
//   +------+--------+-----------+---------+
//
// side_len is fixed by the opening header (ExpectedSideInfoSize: 0 unless params_in_frame); the
// payload is the rest of the buffer (the transport delimits it). The CRC-24 is the low 24 bits
// of CRC32C over the session key followed by side info and payload; the key is the CRC32C of the
// opening header in its canonical form (SessionKey), so a frame coded under another session's
// header fails the check instead of decoding to other symbols. 4 bytes of overhead against the
// full frame's 16 or so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/frame/frame.h"
#include "core/status.h"

namespace splitinfer::codec {

inline constexpr uint8_t kSessionFrameTag = 0xF6;
inline constexpr size_t kSessionFrameOverhead = 4;  // tag + CRC-24

// What a session fixes: the opening frame's header and its key.
struct Session {
  FrameHeader header;
  uint32_t key = 0;
};

// CRC32C of the header as WriteFrame writes it for a zero-length payload, without the frame's
// own CRC (magic through payload_len = 0): the same for every frame with this header.
Result<uint32_t> SessionKey(const FrameHeader& header);

// The session a full frame opens (its header, checked as WriteFrame checks it, and its key).
Result<Session> OpenSession(const FrameHeader& header);

// True when the buffer starts like a session frame (first byte kSessionFrameTag); a full frame
// starts with kFrameMagic0 = 0xF5, so one byte tells them apart.
inline bool IsSessionFrame(const uint8_t* data, size_t size) { return size >= 1 && data[0] == kSessionFrameTag; }

// Serialises one frame of the session. INVALID_ARGUMENT if side_info_size is not the size the
// session's header implies.
Result<std::vector<uint8_t>> WriteSessionFrame(const Session& session, const uint8_t* side_info, size_t side_info_size,
                                               const uint8_t* payload, size_t payload_size);

// A full frame of this session's header (as the codec writes it), rewritten as a session
// frame. kMismatch when the frame's header is not the session's: coded under the session's key,
// its symbols would be decoded with the wrong shape, quantizer or coder, so the caller must open
// a new session with it instead.
Result<std::vector<uint8_t>> SessionFrameOf(const Session& session, const uint8_t* frame, size_t size);

// The size a full frame has inside a session (tag + CRC-24 + side info + payload): what the
// latency model charges per image on a stream.
Result<size_t> SessionFrameSize(const uint8_t* frame, size_t size);

// Parses a session frame into a FrameView whose header is the session's and whose side info and
// payload point into `data`: kFrameTruncated (shorter than tag + CRC + side info),
// kFrameBadMagic (not 0xF6), kFrameLengthOverrun (over limits.max_frame_bytes),
// kFrameCrcMismatch (corrupt, or coded under another session's header), kFrameSideInfo (a
// side-information value that is not finite). The payload's content is not checked here
// (DecodeFrameSymbols does that).
Result<FrameView> ParseSessionFrame(const Session& session, const uint8_t* data, size_t size,
                                    const FrameLimits& limits = {});

}  // namespace splitinfer::codec
