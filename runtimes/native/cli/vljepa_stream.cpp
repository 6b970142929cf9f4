// vljepa-stream: the native twin of `python -m runtimes.stream --artifacts DIR`: the streaming loop of the
// C API (include/edge_vljepa.h) on a video file or a camera, decoded with FFmpeg (video_source.hpp).
//
//   vljepa-stream --artifacts DIR (--video FILE | --camera N) [--query Q] [--labels FILE] [--policy P]
//                 [--every S] [--rate HZ] [--segments N] [--threshold D] [--confirm N] [--min-interval S]
//                 [--max-interval S] [--settle S] [--lead F] [--recheck D] [--max-skip N] [--skip-stable D]
//                 [--skip-pixel P] [--stride N] [--top-k K] [--events OUT.jsonl] [--threads N] [--quiet]
//
// Exit status as the Python CLI: 0 success, 1 the source broke mid-stream (events before it are kept),
// 2 bad input (one line on stderr: "error: ..."), 3 the stream ended before its first window.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "edge_vljepa.h"
#include "video_source.hpp"

namespace {

using nlohmann::json;

struct Args {
  std::string artifacts, video, query = "what is happening?", labels, policy, events, embeddings, summary;
  std::optional<int> camera, stride, threads;
  int top_k = 3;
  std::map<std::string, std::string> given;  // flag -> value, for the policy parameters
  bool quiet = false;
};

const char* kUsage =
    "usage: vljepa-stream --artifacts DIR (--video FILE | --camera N) [--query Q] [--labels FILE]\n"
    "                     [--policy {uniform,offline_segments,online,changepoint}] [--every S] [--rate HZ]\n"
    "                     [--segments N] [--threshold D] [--confirm N] [--min-interval S] [--max-interval S]\n"
    "                     [--settle S] [--lead F] [--recheck D] [--max-skip N] [--skip-stable D]\n"
    "                     [--skip-pixel P] [--stride N] [--top-k K] [--events OUT.jsonl] [--threads N] [--quiet]\n";

const char* kHelp =
    "Run the VL-JEPA streaming loop natively (ExecuTorch) on an exported artifact: every window of frames\n"
    "becomes an embedding (X-Encoder + Predictor), ranked against a label bank; the decode policy decides\n"
    "when the Y-Decoder turns the embedding stream into text. Policy, parameters and stride default to the\n"
    "artifact's decode defaults.\n\n"
    "  --artifacts DIR     an exported executorch artifact directory (required)\n"
    "  --video FILE        a video file (anything FFmpeg decodes)\n"
    "  --camera N          a camera index (live: the newest frame wins, older ones are dropped)\n"
    "  --query Q           the predictor's text query (default: what is happening?)\n"
    "  --labels FILE       label list, one per line (default: the artifact's label bank)\n"
    "  --top-k K           labels shown per window (default: 3)\n"
    "  --stride N          model frames between window starts (default: the artifact's)\n"
    "  --policy P          decode policy: uniform, offline_segments, online, changepoint (default: the artifact's)\n"
    "  --every S           uniform: seconds between decodes (default: 1.0)\n"
    "  --rate HZ           offline_segments: decodes per second (default: 0.35)\n"
    "  --segments N        offline_segments: number of segments (overrides --rate)\n"
    "  --threshold D       online, changepoint: cosine-distance change threshold (default: 0.1)\n"
    "  --confirm N         online: consecutive drifting windows to decide (default: 2)\n"
    "  --min-interval S    online, changepoint: minimum seconds between decodes (default: 1.0, changepoint 0.0)\n"
    "  --max-interval S    online, changepoint: force a decode after this many seconds (default: none)\n"
    "  --settle S          changepoint: seconds from the first drifting window to the decoded one (default: 1.0)\n"
    "  --lead F            changepoint: when the window before the first drifting one was already this fraction\n"
    "                      of --threshold away, the change began earlier and half of --settle suffices (1: never;\n"
    "                      default: 0.5)\n"
    "  --recheck D         changepoint: the first window past the change is decoded again when it differs from\n"
    "                      the decoded one by more than this cosine distance (default: 0.2)\n"
    "  --max-skip N        selective encoding: windows in a row that may reuse the last embedding while the\n"
    "                      scene holds (default: the artifact's, else 0: every window encoded)\n"
    "  --skip-stable D     selective encoding: cosine distance between encoded embeddings under which the\n"
    "                      scene holds (default: 0.05)\n"
    "  --skip-pixel P      selective encoding: thumbnail change (0-1) over which a window is encoded anyway\n"
    "                      (default: 0.01)\n"
    "  --events OUT.jsonl  write events as JSON lines here (flushed per event)\n"
    "  --embeddings OUT.npy  write each window's embedding, (windows, E) float32, for parity checks\n"
    "  --summary OUT.json  write the summary as JSON (windows, stage p50/p90 ms, backend s, peak RSS MB)\n"
    "  --threads N         ExecuTorch CPU threads (default: the runtime's)\n"
    "  --quiet             show decode events only, no window status\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << kUsage << "vljepa-stream: error: " << message << "\n";
  std::exit(2);
}

double parse_double(const std::string& flag, const std::string& v) {
  try {
    size_t n;
    double d = std::stod(v, &n);
    if (n != v.size()) throw std::invalid_argument(v);
    return d;
  } catch (...) {
    usage_error("argument " + flag + ": invalid float value: '" + v + "'");
  }
}

int parse_int(const std::string& flag, const std::string& v) {
  try {
    size_t n;
    long d = std::stol(v, &n);
    if (n != v.size() || d < INT32_MIN || d > INT32_MAX) throw std::invalid_argument(v);
    return int(d);
  } catch (...) {
    usage_error("argument " + flag + ": invalid int value: '" + v + "'");
  }
}

Args parse(int argc, char** argv) {
  Args a;
  static const std::vector<std::string> with_value = {"--artifacts", "--video", "--camera", "--query", "--labels", "--policy",
                                                      "--every", "--rate", "--segments", "--threshold", "--confirm",
                                                      "--min-interval", "--max-interval", "--settle", "--lead", "--recheck", "--max-skip",
                                                      "--skip-stable", "--skip-pixel", "--stride", "--top-k", "--events",
                                                      "--embeddings", "--summary", "--threads"};
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage << "\n" << kHelp;
      std::exit(0);
    }
    if (flag == "--quiet") { a.quiet = true; continue; }
    size_t eq = flag.find('=');
    if (eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (std::find(with_value.begin(), with_value.end(), flag) != with_value.end()) {
      if (i + 1 >= argc) usage_error("argument " + flag + ": expected one argument");
      value = argv[++i];
    }
    if (std::find(with_value.begin(), with_value.end(), flag) == with_value.end()) usage_error("unrecognized arguments: " + flag);
    if (flag == "--artifacts") a.artifacts = value;
    else if (flag == "--video") a.video = value;
    else if (flag == "--camera") a.camera = parse_int(flag, value);
    else if (flag == "--query") a.query = value;
    else if (flag == "--labels") a.labels = value;
    else if (flag == "--policy") {
      if (value != "uniform" && value != "offline_segments" && value != "online" && value != "changepoint")
        usage_error("argument --policy: invalid choice: '" + value +
                    "' (choose from 'uniform', 'offline_segments', 'online', 'changepoint')");
      a.policy = value;
    } else if (flag == "--events") a.events = value;
    else if (flag == "--embeddings") a.embeddings = value;
    else if (flag == "--summary") a.summary = value;
    else if (flag == "--stride") a.stride = parse_int(flag, value);
    else if (flag == "--top-k") a.top_k = parse_int(flag, value);
    else if (flag == "--threads") a.threads = parse_int(flag, value);
    else {
      if (flag == "--segments" || flag == "--confirm" || flag == "--max-skip") parse_int(flag, value);
      else parse_double(flag, value);
      a.given[flag] = value;
    }
  }
  if (a.artifacts.empty()) usage_error("the following arguments are required: --artifacts");
  if (a.video.empty() == !a.camera.has_value()) usage_error("one of the arguments --video --camera is required (and only one)");
  return a;
}

// The policy parameters from the flags given (others: the artifact's defaults for its policy, else the policy's).
json policy_params(const Args& a, const std::string& policy) {
  json p = json::object();
  auto num = [&](const char* flag, const char* key, bool integer) {
    auto it = a.given.find(flag);
    if (it == a.given.end()) return;
    if (integer) p[key] = std::stol(it->second); else p[key] = std::stod(it->second);
  };
  if (policy == "uniform") num("--every", "every_s", false);
  if (policy == "online" || policy == "changepoint") {
    num("--threshold", "threshold", false);
    num("--min-interval", "min_interval_s", false);
    num("--max-interval", "max_interval_s", false);
  }
  if (policy == "online") num("--confirm", "confirm", true);
  if (policy == "changepoint") {
    num("--settle", "settle_s", false);
    num("--lead", "lead", false);
    num("--recheck", "recheck", false);
  }
  if (policy == "offline_segments") {  // exactly one of them; --segments overrides --rate (default 0.35)
    if (a.given.count("--segments")) num("--segments", "n_segments", true);
    else p["rate_hz"] = a.given.count("--rate") ? std::stod(a.given.at("--rate")) : 0.35;
  }
  return p;
}

// The selective-encoding parameters from the flags given (others: the artifact's defaults, else skip.py's).
json skip_params(const Args& a) {
  json p = json::object();
  if (a.given.count("--max-skip")) p["max_skip"] = std::stol(a.given.at("--max-skip"));
  if (a.given.count("--skip-stable")) p["stable"] = std::stod(a.given.at("--skip-stable"));
  if (a.given.count("--skip-pixel")) p["pixel"] = std::stod(a.given.at("--skip-pixel"));
  return p;
}

std::vector<std::string> read_labels(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("label file not found: " + path);
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(f, line)) {
    size_t b = line.find_first_not_of(" \t\r\n\f\v"), e = line.find_last_not_of(" \t\r\n\f\v");
    if (b != std::string::npos) labels.push_back(line.substr(b, e - b + 1));
  }
  if (labels.empty()) throw std::runtime_error("label file " + path + " has no labels (one per line)");
  return labels;
}

std::string fmt2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string py_repr(const std::string& s) {  // Python's repr of a str, for the printed settings
  bool has_single = s.find('\'') != std::string::npos, has_double = s.find('"') != std::string::npos;
  char q = has_single && !has_double ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == q) out += std::string("\\") + q;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out + q;
}

std::string py_dict(const json& p) {
  std::string out = "{";
  bool first = true;
  for (auto& [k, v] : p.items()) {
    out += (first ? "'" : ", '") + k + "': " + (v.is_null() ? "None" : v.dump());
    first = false;
  }
  return out + "}";
}

// --embeddings: one row per window. A frame that completes n windows (n > 1 only after a gap in the
// source's timestamps) leaves the n - 1 earlier rows NaN: the C API exposes the last window's embedding.
void keep_embeddings(evj_session* s, int64_t new_windows, std::vector<std::vector<float>>& rows) {
  if (new_windows <= 0) return;
  const float* data = nullptr;
  size_t dim = 0;
  if (evj_last_embedding(s, &data, &dim) != EVJ_OK || data == nullptr) return;
  for (int64_t i = 1; i < new_windows; ++i) rows.emplace_back(dim, std::nanf(""));
  rows.emplace_back(data, data + dim);
}

// A (rows, dim) float32 .npy file (format version 1.0, C order).
bool write_npy(const std::string& path, const std::vector<std::vector<float>>& rows) {
  size_t dim = rows.empty() ? 0 : rows[0].size();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows.size()) + ", " +
                       std::to_string(dim) + "), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += "\n";
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return false;
  uint16_t n = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&n), 2);
  f << header;
  for (const auto& r : rows) f.write(reinterpret_cast<const char*>(r.data()), std::streamsize(r.size() * sizeof(float)));
  return bool(f);
}

struct View {
  std::ofstream* events = nullptr;
  bool quiet = false, tty = false;
  int64_t count = 0;
  double next_line = -1e300;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

void on_event(const char* line, void* user) {
  auto* v = static_cast<View*>(user);
  ++v->count;
  if (v->events) {
    *v->events << line << "\n";
    v->events->flush();
  }
  json e = json::parse(line);
  std::string labels;
  for (auto& t : e["topk"]) labels += (labels.empty() ? "" : "  ") + t["label"].get<std::string>() + " " + fmt2(t["score"].get<double>());
  if (labels.empty()) labels = "-";
  char head[64];
  std::snprintf(head, sizeof head, "%8.2fs  ", e["time"].get<double>());
  std::string text = std::string(head) + labels;
  bool decode = e["decode"].get<bool>();
  if (decode) {
    std::cout << text << "\n" << std::string(10, ' ') << ">> " << py_repr(e["text"].is_null() ? "" : e["text"].get<std::string>()) << std::endl;
    return;
  }
  if (v->quiet) return;
  double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - v->start).count();
  if (now >= v->next_line) {
    v->next_line = now + 1.0;
    std::cout << text << std::endl;
  }
}

std::atomic<bool> g_interrupted{false};

int fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 2;
}

evj_frame bgr_frame(const VideoFrame& bgr, double t) {
  evj_frame f{};
  f.format = EVJ_FORMAT_BGR;
  f.width = bgr.width;
  f.height = bgr.height;
  f.timestamp_s = t;
  f.planes[0] = bgr.bgr;
  f.row_stride[0] = bgr.stride;
  f.pixel_stride[0] = 3;
  f.plane_size[0] = size_t(bgr.stride) * size_t(bgr.height);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  evj_session* s = nullptr;
  std::unique_ptr<VideoSource> cap;
  json info;
  auto check = [&](evj_status st) {
    if (st != EVJ_OK) throw std::runtime_error(evj_last_error());
  };
  try {
    check(evj_open(args.artifacts.c_str(), nullptr, &s));
    if (args.top_k < 1 || (args.stride && *args.stride < 1)) throw std::runtime_error("--top-k and --stride must be >= 1, --refresh >= 0");
    const char* info_text = nullptr;
    check(evj_info_json(s, &info_text));
    info = json::parse(info_text);
    std::string policy = args.policy.empty() ? info["policy"].get<std::string>() : args.policy;
    check(evj_set_policy(s, policy.c_str(), policy_params(args, policy).dump().c_str()));
    if (args.stride) check(evj_set_stride(s, *args.stride));
    check(evj_set_skip(s, skip_params(args).dump().c_str()));
    check(evj_set_top_k(s, args.top_k));
    // the source before the model work, as the Python CLI
    if (!args.video.empty()) {
      if (access(args.video.c_str(), F_OK) != 0) throw std::runtime_error("video file not found: " + args.video);
      cap = VideoSource::open_file(args.video);
      VideoFrame first;
      if (!cap->read(first)) throw std::runtime_error("video " + args.video + " contains no frames; record or export it again");
      if (!(cap->fps > 0 && std::isfinite(cap->fps)))
        throw std::runtime_error("video " + args.video + " has no frame rate; re-encode it with one, e.g. ffmpeg -i IN -r 30 OUT.mp4");
      cap = VideoSource::open_file(args.video);  // from the first frame again
    } else {
      cap = VideoSource::open_camera(*args.camera);
    }
    check(evj_set_query(s, args.query.c_str()));
    if (!args.labels.empty()) {
      std::vector<std::string> labels = read_labels(args.labels);
      std::vector<const char*> ptrs;
      for (auto& l : labels) ptrs.push_back(l.c_str());
      check(evj_set_labels(s, ptrs.data(), ptrs.size()));
    }
    if (args.threads) check(evj_set_threads(s, *args.threads));
    check(evj_info_json(s, &info_text));
    info = json::parse(info_text);
  } catch (const std::exception& e) {
    if (s) evj_close(s);
    return fail(e.what());
  }

  // -- the effective settings first
  std::string quant;
  for (auto& [c, i] : info["components"].items()) quant += (quant.empty() ? "" : ", ") + c + " " + i["quant"].get<std::string>();
  const json& p = info["preprocessing"];
  double model_fps = p["fps"].get<double>();
  int num_frames = p["num_frames"].get<int>(), stride = info["stride"].get<int>();
  char windows[256];
  std::snprintf(windows, sizeof windows, "windows   %d frames at %g fps = %g s, every %g s; %d px", num_frames, model_fps,
                num_frames / model_fps, stride / model_fps, p["img_size"].get<int>());
  std::cout << "model     preset " << info["preset"].get<std::string>() << ", backend executorch (native core " << evj_version()
            << ", ExecuTorch " << evj_executorch_version() << "), artifact " << args.artifacts << " (" << quant
            << "), weights: " << (info["weights"].is_null() ? "None" : info["weights"].get<std::string>()) << "\n";
  if (!args.video.empty()) {
    char src[512];
    std::snprintf(src, sizeof src, "source    %s (%dx%d, %.2f fps, %lld frames)", args.video.c_str(), cap->width, cap->height,
                  cap->fps, (long long)cap->frame_count);
    std::cout << src << "\n";
  } else {
    std::cout << "source    camera " << *args.camera << " (live)\n";
  }
  std::cout << windows << "\n";
  std::cout << "query     " << py_repr(info["query"].get<std::string>()) << "\n";
  std::cout << "labels    " << info["labels"].get<int64_t>() << " "
            << (info["labels_from"] == "custom" ? "from " + args.labels : std::string("from the artifact's label bank")) << "\n";
  std::cout << "policy    " << info["policy"].get<std::string>() << " " << py_dict(info["params"]) << "\n";
  if (int64_t max_skip = info["skip"]["max_skip"].get<int64_t>()) {
    char skip[256];
    std::snprintf(skip, sizeof skip, "skip      max_skip %lld, stable %g, pixel %g: a change is seen at most %g s late",
                  (long long)max_skip, info["skip"]["stable"].get<double>(), info["skip"]["pixel"].get<double>(),
                  double(max_skip) * stride / model_fps);
    std::cout << skip << "\n";
  }
  std::cout << "\n";

  std::ofstream events;
  View view;
  view.quiet = args.quiet;
  view.tty = isatty(1);
  if (!args.events.empty()) {
    events.open(args.events, std::ios::out | std::ios::trunc);
    if (!events) {
      evj_close(s);
      return fail("cannot write " + args.events);
    }
    view.events = &events;
  }
  evj_set_event_callback(s, on_event, &view);
  std::signal(SIGINT, [](int) { g_interrupted = true; });

  std::string source_error;
  evj_status st = EVJ_OK;
  std::vector<std::vector<float>> embeddings;  // per window, --embeddings
  if (!args.video.empty()) {
    // -- a file: every frame, synchronously, with the container's timestamps (as edge_vljepa VideoFile)
    int64_t count = 0;
    double t_prev = -INFINITY, fps = cap->fps, frame_count = double(cap->frame_count);
    VideoFrame bgr;
    while (!g_interrupted && cap->read(bgr)) {
      double t = bgr.t;
      if (!(t > t_prev)) t = count ? t_prev + 1 / fps : 0.0;  // unknown or repeated timestamps
      evj_frame f = bgr_frame(bgr, t);
      int64_t before = view.count;
      if ((st = evj_process_frame(s, &f)) != EVJ_OK) break;
      if (!args.embeddings.empty()) keep_embeddings(s, view.count - before, embeddings);
      ++count;
      t_prev = t;
    }
    // the end of the file is its duration (the header's frame count at its frame rate), not its frame
    // count: a sparse file has fewer frames, with gaps in their timestamps (edge_vljepa VideoFile.reached_end)
    double slack = std::max<double>(2, 0.01 * frame_count);
    bool reached_end = double(count) >= frame_count - slack || t_prev + 1 / fps >= (frame_count - slack) / fps;
    if (st == EVJ_OK && !g_interrupted && !reached_end) {
      char buf[512];
      std::snprintf(buf, sizeof buf, "VideoError: video %s broke after %lld of %lld frames (at %.2f s): the file is truncated or corrupted",
                    args.video.c_str(), (long long)count, (long long)cap->frame_count, t_prev);
      source_error = buf;
    }
  } else {
    // -- a camera: a capture thread pushes into the keep-newest slot; this thread processes
    std::atomic<bool> stop{false}, ended{false};
    auto start = std::chrono::steady_clock::now();
    std::thread capture([&] {
      VideoFrame bgr;
      while (!stop && cap->read(bgr)) {
        double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        evj_frame f = bgr_frame(bgr, t);
        evj_push_frame(s, &f);
      }
      ended = true;
    });
    while (!g_interrupted && st == EVJ_OK) {
      int32_t processed = 0;
      st = evj_process_pending(s, 100, &processed);
      if (!processed && ended) break;
    }
    stop = true;
    capture.join();
    if (st == EVJ_OK && !g_interrupted) source_error = "VideoError: camera " + std::to_string(*args.camera) + " stopped delivering frames; check its connection";
  }
  if (st != EVJ_OK) {
    std::string kept = "; the " + std::to_string(view.count) + " events before it are kept" + (args.events.empty() ? "" : " in " + args.events);
    std::cerr << "error: " << evj_last_error() << kept << "\n";
    evj_close(s);
    return 2;
  }
  if (evj_finish(s, source_error.empty() ? nullptr : source_error.c_str()) != EVJ_OK) {
    std::cerr << "error: " << evj_last_error() << "; the " << view.count << " events before it are kept"
              << (args.events.empty() ? "" : " in " + args.events) << "\n";
    evj_close(s);
    return 2;
  }
  const char* summary = nullptr;
  evj_summary_text(s, &summary);
  std::cout << "\n" << summary << "\n";
  if (g_interrupted) std::cout << "interrupted by the user\n";
  const char* summary_json = nullptr;
  evj_summary_json(s, &summary_json);
  json sj = json::parse(summary_json);
  if (!args.summary.empty()) {
    std::ofstream out(args.summary, std::ios::trunc);
    out << summary_json << "\n";
    if (!out) {
      std::cerr << "error: cannot write " << args.summary << "\n";
      evj_close(s);
      return 2;
    }
  }
  char mem[256];
  std::snprintf(mem, sizeof mem, "memory       peak RSS %.1f MB; y_decoder loaded lazily", sj["peak_rss_mb"].get<double>());
  std::cout << mem << "\n";
  if (!args.events.empty()) std::cout << "events    " << args.events << "\n";
  if (!args.embeddings.empty()) {
    if (!write_npy(args.embeddings, embeddings)) {
      std::cerr << "error: cannot write " << args.embeddings << "\n";
      evj_close(s);
      return 2;
    }
    std::cout << "embeddings " << args.embeddings << " (" << embeddings.size() << " windows)\n";
  }
  evj_close(s);
  if (!source_error.empty()) return 1;
  if (sj["windows"].get<int64_t>() == 0 && !g_interrupted) {
    char warn[256];
    std::snprintf(warn, sizeof warn, "warning: the video is shorter than one window of %g s (%d frames at %g fps): "
                  "no window, nothing to report", num_frames / model_fps, num_frames, model_fps);
    std::cerr << warn << "\n";
    return 3;
  }
  return 0;
}
