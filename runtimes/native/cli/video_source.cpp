// Video frames with FFmpeg's libraries: demux (libavformat) -> decode (libavcodec, bit-exact) -> BGR24
// (libswscale, bicubic, as OpenCV) -> rotate by the display matrix (as OpenCV's CAP_PROP_ORIENTATION_AUTO).
#include "video_source.hpp"

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <opencv2/core.hpp>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// Degrees clockwise the frame must turn to stand upright (OpenCV's CAP_PROP_ORIENTATION_META).
int rotation_of(const AVStream* st) {
  const uint8_t* matrix = nullptr;
#if LIBAVFORMAT_VERSION_MAJOR >= 61
  const AVPacketSideData* sd = av_packet_side_data_get(st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data,
                                                       AV_PKT_DATA_DISPLAYMATRIX);
  if (sd) matrix = sd->data;
#else
  matrix = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
#endif
  if (!matrix) return 0;
  int angle = -int(std::lround(av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix))));
  return ((angle % 360) + 360) % 360;
}

}  // namespace

struct VideoSource::Impl {
  std::string name;  // "video FILE" or "camera N", for messages
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* decoded = nullptr;
  SwsContext* sws = nullptr;
  int stream = -1, rotation = 0;
  int64_t start_time = AV_NOPTS_VALUE;
  double time_base = 0;
  bool flushing = false, done = false;
  std::vector<uint8_t> scratch;  // the converted picture, 32-byte aligned rows
  cv::Mat rotated;               // the picture turned upright, when the display matrix says so

  ~Impl() {
    sws_freeContext(sws);
    av_frame_free(&decoded);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    avformat_close_input(&format);
  }

  // The next decoded picture into `decoded`; false at the end.
  bool decode_next() {
    while (!done) {
      int r = avcodec_receive_frame(codec, decoded);
      if (r == 0) return true;
      if (r == AVERROR_EOF) break;
      if (r != AVERROR(EAGAIN)) continue;  // a damaged picture: skip it, as OpenCV does
      if (flushing) break;
      r = av_read_frame(format, packet);
      if (r < 0) {  // end of file (or a read error: the caller compares the frame count)
        flushing = true;
        avcodec_send_packet(codec, nullptr);
        continue;
      }
      if (packet->stream_index == stream) avcodec_send_packet(codec, packet);  // invalid data: skipped
      av_packet_unref(packet);
    }
    done = true;
    return false;
  }
};

VideoSource::VideoSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoSource::~VideoSource() = default;

static std::unique_ptr<VideoSource::Impl> open_input(const std::string& url, const std::string& name,
                                                     const AVInputFormat* input, const std::string& unreadable) {
  av_log_set_level(AV_LOG_QUIET);  // errors reach the user as one line from here or from the loop
  auto impl = std::make_unique<VideoSource::Impl>();
  impl->name = name;
  int r = avformat_open_input(&impl->format, url.c_str(), input, nullptr);
  if (r < 0) throw std::runtime_error(unreadable + " (" + av_error(r) + ")");
  if ((r = avformat_find_stream_info(impl->format, nullptr)) < 0) throw std::runtime_error(unreadable + " (" + av_error(r) + ")");
  const AVCodec* decoder = nullptr;
  impl->stream = av_find_best_stream(impl->format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  if (impl->stream < 0) throw std::runtime_error(unreadable + " (no video stream)");
  AVStream* st = impl->format->streams[impl->stream];
  if (!decoder)
    throw std::runtime_error(name + " is encoded with " + avcodec_get_name(st->codecpar->codec_id) +
                             ", which this FFmpeg build cannot decode; re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4");
  impl->codec = avcodec_alloc_context3(decoder);
  impl->packet = av_packet_alloc();
  impl->decoded = av_frame_alloc();
  if (!impl->codec || !impl->packet || !impl->decoded) throw std::runtime_error("out of memory opening " + name);
  avcodec_parameters_to_context(impl->codec, st->codecpar);
  impl->codec->thread_count = 1;
  impl->codec->flags |= AV_CODEC_FLAG_BITEXACT;  // the same pixels from every FFmpeg build and CPU
  if ((r = avcodec_open2(impl->codec, decoder, nullptr)) < 0)
    throw std::runtime_error("cannot open the " + std::string(decoder->name) + " decoder for " + name + " (" + av_error(r) + ")");
  impl->start_time = st->start_time;
  impl->time_base = av_q2d(st->time_base);
  impl->rotation = rotation_of(st);
  return impl;
}

std::unique_ptr<VideoSource> VideoSource::open_file(const std::string& path) {
  auto impl = open_input(path, "video " + path, nullptr,
                         "cannot read " + path + " as a video: not a video file, or a corrupted, truncated or empty one");
  const AVFormatContext* fc = impl->format;
  const AVStream* st = fc->streams[impl->stream];
  std::unique_ptr<VideoSource> source(new VideoSource(std::move(impl)));
  // OpenCV's rules (cap_ffmpeg_impl.hpp get_fps, get_total_frames)
  source->fps = av_q2d(av_guess_frame_rate(const_cast<AVFormatContext*>(fc), const_cast<AVStream*>(st), nullptr));
  int64_t frames = st->nb_frames;
  if (frames <= 0) {
    double seconds = fc->duration > 0 ? double(fc->duration) / AV_TIME_BASE : double(st->duration) * av_q2d(st->time_base);
    frames = seconds > 0 && source->fps > 0 ? int64_t(std::floor(seconds * source->fps + 0.5)) : 0;
  }
  source->frame_count = frames;
  bool sideways = source->impl_->rotation % 180 != 0;
  source->width = sideways ? st->codecpar->height : st->codecpar->width;
  source->height = sideways ? st->codecpar->width : st->codecpar->height;
  return source;
}

std::unique_ptr<VideoSource> VideoSource::open_camera(int index) {
  std::string name = "camera " + std::to_string(index);
  // libavdevice is loaded only here: linked, its dependencies (SDL, X11, PulseAudio, ...) would cost every
  // run of the CLI their memory. Its major version follows libavformat's.
  std::string lib = "libavdevice.so." + std::to_string(LIBAVFORMAT_VERSION_MAJOR);
  void* avdevice = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!avdevice)
    throw std::runtime_error(name + " needs FFmpeg's " + lib + " (Debian/Ubuntu: apt-get install libavdevice" +
                             std::to_string(LIBAVFORMAT_VERSION_MAJOR) + "; JetPack ships it), which is not installed");
  auto register_all = reinterpret_cast<void (*)()>(dlsym(avdevice, "avdevice_register_all"));
  if (register_all) register_all();
  const AVInputFormat* v4l2 = av_find_input_format("video4linux2");
  if (!v4l2) throw std::runtime_error(name + ": this FFmpeg build has no video4linux2 input");
  auto impl = open_input("/dev/video" + std::to_string(index), name, v4l2,
                         name + " is not available: check that it is connected and not used by another program, or pick another index");
  const AVStream* st = impl->format->streams[impl->stream];
  std::unique_ptr<VideoSource> source(new VideoSource(std::move(impl)));
  source->fps = av_q2d(st->avg_frame_rate);
  source->width = st->codecpar->width;
  source->height = st->codecpar->height;
  return source;
}

bool VideoSource::read(VideoFrame& frame) {
  Impl& s = *impl_;
  if (!s.decode_next()) return false;
  const AVFrame* d = s.decoded;
  s.sws = sws_getCachedContext(s.sws, d->width, d->height, AVPixelFormat(d->format), d->width, d->height, AV_PIX_FMT_BGR24,
                               SWS_BICUBIC, nullptr, nullptr, nullptr);
  if (!s.sws) throw std::runtime_error(s.name + ": cannot convert its pixel format " + std::to_string(d->format) + " to BGR");
  int stride = FFALIGN(d->width * 3, 32);
  s.scratch.resize(size_t(stride) * size_t(d->height) + 32);
  uint8_t* data = reinterpret_cast<uint8_t*>(FFALIGN(reinterpret_cast<uintptr_t>(s.scratch.data()), 32));
  uint8_t* dst[4] = {data, nullptr, nullptr, nullptr};
  int dst_stride[4] = {stride, 0, 0, 0};
  sws_scale(s.sws, d->data, d->linesize, 0, d->height, dst, dst_stride);
  // the frame's presentation time from the stream's start (OpenCV's CAP_PROP_POS_MSEC)
  int64_t pts = d->pts != AV_NOPTS_VALUE ? d->pts : d->pkt_dts;
  frame.t = pts == AV_NOPTS_VALUE ? NAN : double(pts - (s.start_time == AV_NOPTS_VALUE ? 0 : s.start_time)) * s.time_base;

  cv::Mat view(d->height, d->width, CV_8UC3, data, size_t(stride));
  if (s.rotation == 90) cv::rotate(view, s.rotated, cv::ROTATE_90_CLOCKWISE);
  else if (s.rotation == 180) cv::rotate(view, s.rotated, cv::ROTATE_180);
  else if (s.rotation == 270) cv::rotate(view, s.rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
  const cv::Mat& out = s.rotation ? s.rotated : view;
  frame.width = out.cols;
  frame.height = out.rows;
  frame.stride = int(out.step[0]);
  frame.bgr = out.data;
  return true;
}
