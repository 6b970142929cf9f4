// Unit tests of the loop stages that need no artifact: sha256, npz, window arithmetic, policies,
// preprocessing, label bank, events, summary.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <tuple>

#include <opencv2/imgproc.hpp>

#include "artifact.h"
#include "error.h"
#include "events.h"
#include "label_bank.h"
#include "loop.h"
#include "npz.h"
#include "policies.h"
#include "preprocess.h"
#include "sha256.h"
#include "skip.h"
#include "window.h"

using namespace evj;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 h;  // split updates give the same digest
  for (char c : std::string("abc")) h.update(&c, 1);
  EXPECT_EQ(h.hexdigest(), sha256_hex("abc"));
}

TEST(CanonicalJson, MatchesPythonJsonDumpsSortKeys) {
  auto j = nlohmann::json::parse(R"({"b": [1, 2], "a": {"z": "x", "y": "é"}})");
  EXPECT_EQ(canonical_json(j), R"({"a":{"y":"\u00e9","z":"x"},"b":[1,2]})");
}

TEST(Window, ResamplerPlacesFramesOnTheGridByTimestamp) {
  Resampler r(4.0);
  EXPECT_EQ(r.push(10.0), (std::vector<int64_t>{0}));  // t0 = 10
  EXPECT_TRUE(r.push(10.1).empty());
  EXPECT_EQ(r.push(10.25), (std::vector<int64_t>{1}));
  EXPECT_EQ(r.push(10.8), (std::vector<int64_t>{2, 3}));  // a slow source repeats frames
  EXPECT_DOUBLE_EQ(r.time(3), 10.75);
  Resampler r30(4.0);  // 15 / 30 fps lands on the grid
  for (int i = 0; i < 15; ++i) r30.push(i / 30.0);
  EXPECT_EQ(r30.push(15 / 30.0), (std::vector<int64_t>{2}));
}

TEST(Window, BufferEmitsEveryStrideAndRestartsOnGaps) {
  WindowBuffer b(4, 2, 4.0);
  cv::Mat f(2, 2, CV_8UC3);
  std::vector<int64_t> emitted;
  for (int64_t k = 0; k < 8; ++k)
    if (auto w = b.push(k, k / 4.0, f)) {
      emitted.push_back(k);
      EXPECT_DOUBLE_EQ(w->end - w->start, 1.0);
    }
  EXPECT_EQ(emitted, (std::vector<int64_t>{3, 5, 7}));
  EXPECT_FALSE(b.push(20, 5.0, f));  // a gap restarts: 4 new frames needed
  EXPECT_FALSE(b.push(21, 5.25, f));
  EXPECT_FALSE(b.push(22, 5.5, f));
  auto w = b.push(23, 5.75, f);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->index, 3);
  EXPECT_DOUBLE_EQ(w->start, 5.0);
}

static std::vector<float> unit(int i, int d = 4) {
  std::vector<float> v(size_t(d), 0.f);
  v[size_t(i)] = 1.f;
  return v;
}

TEST(Policies, UniformDecodesEveryPeriod) {
  auto p = make_policy("uniform", {{"every_s", 1.0}});
  std::vector<int64_t> decoded;
  for (int64_t i = 0; i < 8; ++i)
    if (p->observe(i, i * 0.5, i * 0.5 + 1.0, unit(0))) decoded.push_back(i);
  EXPECT_EQ(decoded, (std::vector<int64_t>{0, 2, 4, 6}));
}

TEST(Policies, OnlineDecodesOncePerChange) {
  auto p = make_policy("online", nlohmann::json::object());
  std::vector<int64_t> decoded;
  for (int64_t i = 0; i < 20; ++i)
    if (auto r = p->observe(i, i * 0.5, i * 0.5 + 1.0, unit(i < 10 ? 0 : 1))) decoded.push_back(r->window);
  EXPECT_EQ(decoded, (std::vector<int64_t>{1, 11}));  // first `confirm` windows, then the change at 10 confirmed at 11
}

TEST(Policies, OfflineSegmentsSplitAtTheChange) {
  auto p = make_policy("offline_segments", {{"n_segments", 2}});
  for (int64_t i = 0; i < 10; ++i) EXPECT_FALSE(p->observe(i, i * 0.5, i * 0.5 + 1.0, unit(i < 6 ? 0 : 1)));
  auto rs = p->finish();
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].span, (std::pair<int64_t, int64_t>{0, 5}));
  EXPECT_EQ(rs[1].span, (std::pair<int64_t, int64_t>{6, 9}));
  EXPECT_EQ(rs[0].window, 2);
}

TEST(Policies, BadNamesAndParametersAreRefusedWithPythonsMessages) {
  try {
    make_policy("nope", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown decode policy 'nope'; choose one of: uniform, offline_segments, online, changepoint");
  }
  EXPECT_THROW(make_policy("uniform", {{"every", 1}}), Error);
  EXPECT_THROW(make_policy("uniform", {{"every_s", -1}}), Error);
  EXPECT_THROW(make_policy("online", {{"threshold", 3}}), Error);
  EXPECT_THROW(make_policy("online", {{"confirm", 1.5}}), Error);
  EXPECT_THROW(make_policy("offline_segments", nlohmann::json::object()), Error);
  EXPECT_THROW(make_policy("offline_segments", {{"n_segments", 2}, {"rate_hz", 1.0}}), Error);
  EXPECT_THROW(make_policy("changepoint", {{"settle_s", -1.0}}), Error);
  EXPECT_THROW(make_policy("changepoint", {{"confirm", 2}}), Error);
  try {
    make_policy("changepoint", {{"lead", 1.5}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "changepoint: lead is a fraction of threshold in [0, 1], got 1.5");
  }
  try {
    make_policy("changepoint", {{"recheck", 0.0}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "changepoint: recheck is a cosine distance in (0, 2), got 0.0");
  }
  EXPECT_EQ(policy_defaults("changepoint")["lead"], 0.5);
  EXPECT_EQ(policy_defaults("changepoint")["recheck"], 0.2);
}

TEST(Policies, ChangePointDecodesTheSettledWindowOncePerChange) {
  auto p = make_policy("changepoint", nlohmann::json::object());
  std::vector<int64_t> decoded;
  for (int64_t i = 0; i < 20; ++i)
    if (auto r = p->observe(i, i * 0.5, i * 0.5 + 1.0, unit(i < 10 ? 0 : 1))) decoded.push_back(r->window);
  EXPECT_EQ(decoded, (std::vector<int64_t>{0, 12}));  // the first window; the change at 10, settle_s = 1 s later
}

// The decoded windows and, per window before it is observed, wants_embedding ('-' none, 'R' reuse, 'E' encode).
static std::pair<std::vector<int64_t>, std::string> changepoint_run(const nlohmann::json& params,
                                                                    const std::vector<std::vector<float>>& es) {
  auto p = make_policy("changepoint", params);
  std::vector<int64_t> decoded;
  std::string wants;
  for (int64_t i = 0; i < int64_t(es.size()); ++i) {
    std::optional<bool> w = p->wants_embedding(i * 0.5, i * 0.5 + 1.0);
    wants += !w ? '-' : (*w ? 'E' : 'R');
    if (auto r = p->observe(i, i * 0.5, i * 0.5 + 1.0, es[size_t(i)])) decoded.push_back(r->window);
  }
  return {decoded, wants};
}

TEST(Policies, ChangePointHalvesSettleAfterALead) {
  // window 10 is 0.07 from the old scene (under threshold 0.1, over lead 0.5 x 0.1): the change began there
  std::vector<std::vector<float>> es;
  for (int i = 0; i < 16; ++i) es.push_back(unit(i < 10 ? 0 : 1));
  es[10] = {0.93f, 0.f, float(std::sqrt(1.0 - 0.93 * 0.93)), 0.f};
  auto [decoded, wants] = changepoint_run(nlohmann::json::object(), es);
  EXPECT_EQ(decoded, (std::vector<int64_t>{0, 12}));  // first drifting window 11, settle_s / 2 = 0.5 s later
  EXPECT_EQ(wants, "------------EE--");  // the decision window, then the recheck window (start 6.5 = 11's end)
  std::tie(decoded, wants) = changepoint_run({{"lead", 1.0}}, es);  // lead 1: never
  EXPECT_EQ(decoded, (std::vector<int64_t>{0, 13}));
  EXPECT_EQ(wants, "------------REE-");  // settling: 12 may reuse
  std::tie(decoded, wants) = changepoint_run({{"lead", 0.8}}, es);  // 0.07 <= 0.8 x 0.1
  EXPECT_EQ(decoded, (std::vector<int64_t>{0, 13}));
}

TEST(Policies, ChangePointRechecksAgainstRecheckNotThreshold) {
  // settle 0: decided at the first drifting window, a mix 0.15 from the new scene (over threshold 0.1)
  std::vector<std::vector<float>> es;
  for (int i = 0; i < 16; ++i) es.push_back(unit(i < 10 ? 0 : 1));
  es[10] = {float(std::sqrt(1.0 - 0.85 * 0.85)), 0.85f, 0.f, 0.f};
  auto [decoded, wants] = changepoint_run({{"settle_s", 0.0}}, es);
  EXPECT_EQ(decoded, (std::vector<int64_t>{0, 10}));  // 0.15 <= recheck 0.2: no second decode
  EXPECT_EQ(wants, "-----------RE---");  // 11 follows the transition; 12 (start 6.0 = 10's end) is the recheck
  std::tie(decoded, wants) = changepoint_run({{"settle_s", 0.0}, {"recheck", 0.12}}, es);
  EXPECT_EQ(decoded, (std::vector<int64_t>{0, 10, 12}));
}

TEST(Skip, GateLengthensTheStrideWhileTheSceneHoldsAndEncodesOnAPixelChange) {
  cv::Mat still(16, 16, CV_8UC3, cv::Scalar(100, 100, 100)), bright(16, 16, CV_8UC3, cv::Scalar(130, 130, 130));
  auto pattern = [](SkipGate g, const std::vector<cv::Mat>& frames, const std::vector<int>& scene) {
    std::string out;
    for (size_t i = 0; i < frames.size(); ++i) {
      if (g.reuse(frames[i])) { out += "R"; continue; }
      g.encoded(unit(scene[i]));
      out += "E";
    }
    return out;
  };
  SkipParams two;
  two.max_skip = 2;
  EXPECT_EQ(pattern(SkipGate(), std::vector<cv::Mat>(6, still), std::vector<int>(6, 0)), "EEEEEE");
  EXPECT_EQ(pattern(SkipGate(two), std::vector<cv::Mat>(12, still), std::vector<int>(12, 0)), "EERERRERRERR");
  EXPECT_EQ(pattern(SkipGate(two), std::vector<cv::Mat>(10, still), {0, 0, 0, 0, 1, 1, 1, 1, 1, 1}), "EERERREERE");
  EXPECT_EQ(pattern(SkipGate(two), {still, still, bright, bright, bright, bright, bright}, std::vector<int>(7, 0)), "EEERRER");
  EXPECT_DOUBLE_EQ(thumbnail_change(thumbnail(still), thumbnail(bright), 16), 30.0 / 255);
  // the policy's answer (wants_embedding) overrides the tests: true encodes, false reuses (not before the
  // first encoded window, nor with max_skip 0)
  auto hinted = [](SkipGate g, const std::vector<cv::Mat>& frames, const std::string& wanted) {
    std::string out;
    for (size_t i = 0; i < frames.size(); ++i) {
      std::optional<bool> w = wanted[i] == '-' ? std::nullopt : std::optional<bool>(wanted[i] == 'E');
      if (g.reuse(frames[i], w)) { out += "R"; continue; }
      g.encoded(unit(0));
      out += "E";
    }
    return out;
  };
  EXPECT_EQ(hinted(SkipGate(two), std::vector<cv::Mat>(8, still), "EEEEEEEE"), "EEEEEEEE");
  EXPECT_EQ(hinted(SkipGate(two), std::vector<cv::Mat>(8, still), "RRRRR---"), "ERRRRERE");
  EXPECT_EQ(hinted(SkipGate(two), {still, still, bright, bright, bright}, "--RR-"), "EERRE");
  EXPECT_EQ(hinted(SkipGate(), std::vector<cv::Mat>(4, still), "RRRR"), "EEEE");
  EXPECT_THROW(skip_params({{"max_skip", -1}}), Error);
  EXPECT_THROW(skip_params({{"stable", 0}}), Error);
  EXPECT_THROW(skip_params({{"every", 1}}), Error);
  EXPECT_EQ(skip_params({{"max_skip", 3}}).max_skip, 3);
}

TEST(Preprocess, ShortSideResizeAndCentreCrop) {
  cv::Mat rgb(48, 96, CV_8UC3, cv::Scalar(10, 20, 30));
  rgb(cv::Rect(0, 0, 24, 48)).setTo(cv::Scalar(255, 0, 0));  // left quarter cropped away
  cv::Mat out = prepare_frame(rgb, 16);
  ASSERT_EQ(out.rows, 16);
  ASSERT_EQ(out.cols, 16);
  EXPECT_EQ(out.at<cv::Vec3b>(8, 8), cv::Vec3b(10, 20, 30));
}

TEST(Preprocess, VideoTensorLayoutAndNormalisation) {
  PreprocessSpec spec;
  spec.img_size = 2;
  spec.num_frames = 2;
  spec.fps = 4;
  spec.mean[0] = 0.5f; spec.std[0] = 0.25f;
  cv::Mat a(2, 2, CV_8UC3, cv::Scalar(255, 0, 0)), b(2, 2, CV_8UC3, cv::Scalar(0, 0, 0));
  std::vector<float> out;
  to_video_tensor({a, b}, spec, out);
  ASSERT_EQ(out.size(), 3u * 2 * 2 * 2);
  EXPECT_FLOAT_EQ(out[0], (1.0f - 0.5f) / 0.25f);  // c=0, t=0
  EXPECT_FLOAT_EQ(out[4], (0.0f - 0.5f) / 0.25f);  // c=0, t=1
}

static evj_frame rgb_frame(const std::vector<uint8_t>& buf, int w, int h, int format = EVJ_FORMAT_RGB, int ps = 3) {
  evj_frame f{};
  f.format = format;
  f.width = w;
  f.height = h;
  f.planes[0] = buf.data();
  f.row_stride[0] = w * ps;
  f.pixel_stride[0] = ps;
  f.plane_size[0] = buf.size();
  return f;
}

TEST(Preprocess, FramesOfEveryFormatConvertToTheSameRgb) {
  const int w = 8, h = 4;
  cv::Mat rgb(h, w, CV_8UC3);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) rgb.at<cv::Vec3b>(r, c) = cv::Vec3b(uint8_t(40 + 10 * c), uint8_t(60 + 12 * r), 120);  // smooth
  std::vector<uint8_t> packed(rgb.data, rgb.data + rgb.total() * 3);
  cv::Mat got = frame_to_rgb(rgb_frame(packed, w, h));
  EXPECT_EQ(cv::norm(got, rgb, cv::NORM_INF), 0);
  cv::Mat rgba;
  cv::cvtColor(rgb, rgba, cv::COLOR_RGB2RGBA);
  std::vector<uint8_t> p4(rgba.data, rgba.data + rgba.total() * 4);
  EXPECT_EQ(cv::norm(frame_to_rgb(rgb_frame(p4, w, h, EVJ_FORMAT_RGBA, 4)), rgb, cv::NORM_INF), 0);
  // YUV: I420 through YUV_420_888 planes vs NV21 with padded rows give the same RGB
  cv::Mat i420;
  cv::cvtColor(rgb, i420, cv::COLOR_RGB2YUV_I420);
  const uint8_t* y = i420.data;
  const uint8_t* u = y + w * h;
  const uint8_t* v = u + w * h / 4;
  evj_frame f{};
  f.format = EVJ_FORMAT_YUV_420_888;
  f.width = w; f.height = h;
  f.planes[0] = y; f.planes[1] = u; f.planes[2] = v;
  f.row_stride[0] = w; f.row_stride[1] = w / 2; f.row_stride[2] = w / 2;
  f.pixel_stride[0] = 1; f.pixel_stride[1] = 1; f.pixel_stride[2] = 1;
  f.plane_size[0] = size_t(w * h); f.plane_size[1] = f.plane_size[2] = size_t(w * h / 4);
  cv::Mat from_yuv = frame_to_rgb(f);
  std::vector<uint8_t> yp(size_t((w + 4) * h)), vu(size_t((w + 4) * h / 2));
  for (int r = 0; r < h; ++r) std::memcpy(&yp[size_t(r * (w + 4))], y + r * w, size_t(w));
  for (int r = 0; r < h / 2; ++r)
    for (int c = 0; c < w / 2; ++c) {
      vu[size_t(r * (w + 4) + 2 * c)] = v[r * w / 2 + c];
      vu[size_t(r * (w + 4) + 2 * c + 1)] = u[r * w / 2 + c];
    }
  evj_frame n{};
  n.format = EVJ_FORMAT_NV21;
  n.width = w; n.height = h;
  n.planes[0] = yp.data(); n.planes[1] = vu.data();
  n.row_stride[0] = w + 4; n.row_stride[1] = w + 4;
  n.plane_size[0] = yp.size(); n.plane_size[1] = vu.size();
  EXPECT_EQ(cv::norm(frame_to_rgb(n), from_yuv, cv::NORM_INF), 0);
  EXPECT_LE(cv::norm(from_yuv, rgb, cv::NORM_INF), 12);  // YUV 4:2:0 round trip of a smooth image
}

TEST(Preprocess, BadFramesAreRefusedNotRead) {
  std::vector<uint8_t> buf(8 * 4 * 3);
  evj_frame f = rgb_frame(buf, 8, 4);
  f.plane_size[0] = buf.size() - 1;
  EXPECT_THROW(validate_frame(f), Error);
  f = rgb_frame(buf, 8, 4);
  f.row_stride[0] = 5;
  EXPECT_THROW(validate_frame(f), Error);
  f = rgb_frame(buf, 0, 4);
  EXPECT_THROW(validate_frame(f), Error);
  f = rgb_frame(buf, 8, 4);
  f.format = 99;
  EXPECT_THROW(validate_frame(f), Error);
  f = rgb_frame(buf, 8, 4);
  f.planes[0] = nullptr;
  EXPECT_THROW(validate_frame(f), Error);
  f = rgb_frame(buf, 7, 4, EVJ_FORMAT_NV21, 1);
  EXPECT_THROW(validate_frame(f), Error);
}

TEST(LabelBank, TopkIsStableCosineOrder) {
  LabelBank bank({"a", "b", "c"}, {1, 0, 0, 1, 2, 0}, 2);
  auto top = bank.topk({0, 3}, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].first, "b");
  EXPECT_NEAR(top[0].second, 1.0f, 1e-6);
  EXPECT_EQ(top[1].first, "a");  // a and c tie at 0: the bank's order
  EXPECT_THROW(LabelBank({"a", "a"}, {1, 0, 0, 1}, 2), Error);
  EXPECT_THROW(LabelBank({}, {}, 2), Error);
  EXPECT_THROW(bank.topk({1, 2, 3}, 1), Error);
}

TEST(Npz, RejectsGarbageWithoutCrashing) {
  std::string junk = "PK\x05\x06 not really a zip file";
  EXPECT_THROW(parse_npz(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "junk"), Error);
  std::string npy = std::string("\x93NUMPY\x01\x00", 8) + std::string("\x20\x00", 2) + "{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }";
  EXPECT_THROW(parse_npy(reinterpret_cast<const uint8_t*>(npy.data()), npy.size(), "npy"), Error);
}

TEST(Events, JsonHasPythonsKeysInOrder) {
  Event e;
  e.time = 2.5; e.window = 8; e.start = 1.5; e.end = 3.5;
  e.topk = {{"cutting bread", 0.5f}};
  e.decode = true; e.text = "a person cuts bread"; e.span = std::make_pair(int64_t(6), int64_t(8));
  e.ms = {{"preprocess", 0.25}};
  EXPECT_EQ(e.to_json(), R"({"time":2.5,"window":8,"start":1.5,"end":3.5,"topk":[{"label":"cutting bread","score":0.5}],)"
                         R"("decode":true,"text":"a person cuts bread","span":[6,8],"ms":{"preprocess":0.25}})");
  Event n;
  EXPECT_EQ(n.to_json(), R"({"time":0.0,"window":0,"start":0.0,"end":0.0,"topk":[],"decode":false,"text":null,"span":null,"ms":{}})");
  n.reused = true;  // only then a "reused" key, last
  EXPECT_EQ(n.to_json(), R"({"time":0.0,"window":0,"start":0.0,"end":0.0,"topk":[],"decode":false,"text":null,"span":null,"ms":{},"reused":true})");
}

TEST(Summary, FormatsLikePython) {
  Summary s;
  s.windows = 4; s.decodes = 1; s.source_frames = 40; s.stream_s = 4.0; s.wall_s = 2.0; s.backend_s = 1.5;
  s.stage_ms = {{"x_encoder", {1.0, 2.0}}};
  s.error = "VideoError: broke";
  EXPECT_EQ(s.format(),
            "windows      4 (2.0 windows/s)\n"
            "stream       4.00 s in 2.00 s wall (real-time factor 2.00x)\n"
            "decodes      1 (15.0 per minute)\n"
            "frames       40 read, 0 dropped\n"
            "backend      1.50 s, outside backend 0.50 s\n"
            "stage        p50 ms    p90 ms\n"
            "  x_encoder      1.00      2.00\n"
            "the source broke mid-stream: VideoError: broke");
  s.reused = 3;
  EXPECT_EQ(s.format().substr(0, s.format().find('\n')), "windows      4 (2.0 windows/s), 3 reused (x_encoder on 1)");
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90), 9.1);
}
