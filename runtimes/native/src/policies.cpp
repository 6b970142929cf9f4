#include "policies.h"

#include <cmath>
#include <limits>

#include "error.h"
#include "label_bank.h"
#include "ward.h"
#include "window.h"

namespace evj {
using nlohmann::json;
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw Error(EVJ_ERR_INVALID_ARGUMENT, message);
}

std::string num(double v) {
  json j = v;
  return j.dump();
}

float dot(const std::vector<float>& a, const std::vector<float>& b) {
  float s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

std::vector<float> mean_rows(const std::vector<std::vector<float>>& rows, size_t first, size_t last) {
  std::vector<double> acc(rows[first].size(), 0.0);
  for (size_t r = first; r <= last; ++r)
    for (size_t i = 0; i < acc.size(); ++i) acc[i] += rows[r][i];
  std::vector<float> out(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) out[i] = float(acc[i] / double(last - first + 1));
  return out;
}

class Uniform : public Policy {
 public:
  explicit Uniform(double every_s) : every_s_(every_s) {
    require(every_s > 0, "uniform: every_s must be > 0, got " + num(every_s));
  }
  std::optional<DecodeRequest> observe(int64_t index, double start, double end, const std::vector<float>& e) override {
    double t = (start + end) / 2;
    if (!has_first_) {
      t_first_ = t;
      has_first_ = true;
    }
    if (t < next_t_ - kEpsS) return std::nullopt;
    double periods = std::floor((t - t_first_) / every_s_ + kEpsS) + 1;
    next_t_ = t_first_ + periods * every_s_;
    return DecodeRequest{t, index, {index, index}, l2_normalize(e)};
  }
  std::vector<DecodeRequest> finish() override { return {}; }

 private:
  double every_s_, t_first_ = 0, next_t_ = -std::numeric_limits<double>::infinity();
  bool has_first_ = false;
};

class OfflineSegments : public Policy {
 public:
  OfflineSegments(std::optional<int64_t> n_segments, std::optional<double> rate_hz) : n_(n_segments), rate_(rate_hz) {
    require(n_.has_value() != rate_.has_value(),
            "offline_segments: give exactly one of n_segments (a count) or rate_hz (decodes per second), got n_segments=" +
                (n_ ? std::to_string(*n_) : "None") + ", rate_hz=" + (rate_ ? num(*rate_) : "None"));
    require(!n_ || *n_ > 0, "offline_segments: n_segments must be a positive integer, got " + (n_ ? std::to_string(*n_) : "None"));
    require(!rate_ || *rate_ > 0, "offline_segments: rate_hz must be > 0, got " + (rate_ ? num(*rate_) : "None"));
  }
  std::optional<DecodeRequest> observe(int64_t index, double start, double end, const std::vector<float>& e) override {
    indices_.push_back(index);
    times_.push_back((start + end) / 2);
    embeddings_.push_back(l2_normalize(e));
    return std::nullopt;
  }
  std::vector<DecodeRequest> finish() override {
    std::vector<DecodeRequest> out;
    if (times_.empty()) return out;
    int64_t n = n_ ? *n_ : std::max<int64_t>(1, int64_t(std::nearbyint(*rate_ * (times_.back() - times_.front()))));
    const int rows = int(embeddings_.size()), d = int(embeddings_[0].size());
    std::vector<float> x;
    x.reserve(size_t(rows) * size_t(d));
    for (const auto& r : embeddings_) x.insert(x.end(), r.begin(), r.end());
    int k = int(std::min<int64_t>(n, rows));
    for (auto [first, last] : ward_runs(x, rows, d, k)) {
      size_t middle = size_t((first + last) / 2);
      out.push_back(DecodeRequest{(times_[size_t(first)] + times_[size_t(last)]) / 2, indices_[middle],
                                  {indices_[size_t(first)], indices_[size_t(last)]},
                                  l2_normalize(mean_rows(embeddings_, size_t(first), size_t(last)))});
    }
    indices_.clear(); times_.clear(); embeddings_.clear();
    return out;
  }

 private:
  std::optional<int64_t> n_;
  std::optional<double> rate_;
  std::vector<int64_t> indices_;
  std::vector<double> times_;
  std::vector<std::vector<float>> embeddings_;
};

class Online : public Policy {
 public:
  Online(double threshold, int64_t confirm, double min_interval_s, std::optional<double> max_interval_s)
      : threshold_(threshold), confirm_(confirm), min_interval_s_(min_interval_s), max_interval_s_(max_interval_s) {
    require(0 < threshold && threshold < 2, "online: threshold is a cosine distance in (0, 2), got " + num(threshold));
    require(confirm >= 1, "online: confirm must be an integer >= 1, got " + std::to_string(confirm));
    require(min_interval_s >= 0, "online: min_interval_s must be >= 0, got " + num(min_interval_s));
    require(!max_interval_s || *max_interval_s > min_interval_s,
            "online: max_interval_s (" + (max_interval_s ? num(*max_interval_s) : std::string("None")) +
                ") must be None or > min_interval_s (" + num(min_interval_s) + ")");
  }
  std::optional<DecodeRequest> observe(int64_t index, double start, double end, const std::vector<float>& embedding) override {
    std::vector<float> e = l2_normalize(embedding);
    double t = (start + end) / 2;
    if (anchor_until_) {  // r follows the content until it is past the change
      segment_sum_ = e;
      if (start >= *anchor_until_ - kEpsS) anchor_until_.reset();
      return std::nullopt;
    }
    double since = t - last_t_;
    if (segment_sum_) {
      if (max_interval_s_ && since >= *max_interval_s_ - kEpsS) return decode(t, end, {index, index}, e);
      if (1.0 - double(dot(e, l2_normalize(*segment_sum_))) <= threshold_) {
        drifting_.clear();
        for (size_t i = 0; i < e.size(); ++i) (*segment_sum_)[i] += e[i];
        return std::nullopt;
      }
    }
    drifting_.emplace_back(index, e);
    if (int64_t(drifting_.size()) > confirm_) drifting_.pop_front();
    if (int64_t(drifting_.size()) < confirm_ || since < min_interval_s_ - kEpsS) return std::nullopt;
    std::vector<std::vector<float>> rows;
    for (auto& [i, d] : drifting_) rows.push_back(d);
    std::vector<float> mean = l2_normalize(mean_rows(rows, 0, rows.size() - 1));
    return decode(t, end, {drifting_.front().first, index}, mean);
  }
  std::vector<DecodeRequest> finish() override { return {}; }

 private:
  DecodeRequest decode(double t, double end, std::pair<int64_t, int64_t> span, const std::vector<float>& e) {
    segment_sum_ = e;
    anchor_until_ = end;
    last_t_ = t;
    drifting_.clear();
    return DecodeRequest{t, span.second, span, e};
  }
  double threshold_;
  int64_t confirm_;
  double min_interval_s_;
  std::optional<double> max_interval_s_;
  std::optional<std::vector<float>> segment_sum_;
  std::deque<std::pair<int64_t, std::vector<float>>> drifting_;
  std::optional<double> anchor_until_;
  double last_t_ = -std::numeric_limits<double>::infinity();
};

// Python: ChangePoint (policies.py), step by step. When the window before the first drifting one was
// already more than lead x threshold from r (previous_), the change began a window earlier: the wait is
// settle_s / 2 (settle_, fixed at the first drifting window). The recheck window is decoded again when it
// differs from the decoded embedding by more than `recheck`.
class ChangePoint : public Policy {
 public:
  ChangePoint(double threshold, double settle_s, double min_interval_s, std::optional<double> max_interval_s, double lead,
              double recheck)
      : threshold_(threshold), settle_s_(settle_s), min_interval_s_(min_interval_s), lead_(lead), recheck_(recheck),
        settle_(settle_s), max_interval_s_(max_interval_s) {
    require(0 < threshold && threshold < 2, "changepoint: threshold is a cosine distance in (0, 2), got " + num(threshold));
    require(min_interval_s >= 0, "changepoint: min_interval_s must be >= 0, got " + num(min_interval_s));
    require(!max_interval_s || *max_interval_s > min_interval_s,
            "changepoint: max_interval_s (" + (max_interval_s ? num(*max_interval_s) : std::string("None")) +
                ") must be None or > min_interval_s (" + num(min_interval_s) + ")");
    require(settle_s >= 0, "changepoint: settle_s must be >= 0, got " + num(settle_s));
    require(0 <= lead && lead <= 1, "changepoint: lead is a fraction of threshold in [0, 1], got " + num(lead));
    require(0 < recheck && recheck < 2, "changepoint: recheck is a cosine distance in (0, 2), got " + num(recheck));
  }
  // Python: ChangePoint.wants_embedding: settling, only the window where settle is reached decides; following
  // the transition, only the recheck window; elsewhere no preference.
  std::optional<bool> wants_embedding(double start, double end) const override {
    if (first_) return (start + end) / 2 - first_->t >= settle_ - kEpsS;
    if (anchor_until_) return start >= *anchor_until_ - kEpsS;
    return std::nullopt;
  }
  std::optional<DecodeRequest> observe(int64_t index, double start, double end, const std::vector<float>& embedding) override {
    std::vector<float> e = l2_normalize(embedding);
    double t = (start + end) / 2;
    if (!segment_sum_) return decode(t, {index, index}, e, std::nullopt);  // the first window: describe it
    double since = t - last_t_;
    if (max_interval_s_ && since >= *max_interval_s_ - kEpsS) return decode(t, {index, index}, e, std::nullopt);
    if (anchor_until_) {  // r follows the content until it is past the change
      segment_sum_ = e;
      if (start < *anchor_until_ - kEpsS) return std::nullopt;
      anchor_until_.reset();  // all past the change: was the decoded text of it?
      if (1.0 - double(dot(e, decoded_)) > recheck_) return decode(t, {index, index}, e, std::nullopt);
      return std::nullopt;
    }
    double distance = 1.0 - double(dot(e, l2_normalize(*segment_sum_)));
    if (distance <= threshold_) {
      first_.reset();
      previous_ = distance;
      for (size_t i = 0; i < e.size(); ++i) (*segment_sum_)[i] += e[i];
      return std::nullopt;
    }
    if (!first_) {
      first_ = First{index, t, end};
      settle_ = previous_ > lead_ * threshold_ ? settle_s_ / 2 : settle_s_;
    }
    if (t - first_->t < settle_ - kEpsS || since < min_interval_s_ - kEpsS) return std::nullopt;
    return decode(t, {first_->index, index}, e, first_->end);
  }
  std::vector<DecodeRequest> finish() override { return {}; }

 private:
  struct First {
    int64_t index;
    double t, end;
  };
  DecodeRequest decode(double t, std::pair<int64_t, int64_t> span, const std::vector<float>& e, std::optional<double> anchor_until) {
    segment_sum_ = e;
    decoded_ = e;
    previous_ = 0.0;
    anchor_until_ = anchor_until;
    last_t_ = t;
    first_.reset();
    return DecodeRequest{t, span.second, span, e};
  }
  double threshold_, settle_s_, min_interval_s_, lead_, recheck_;
  double settle_;  // the wait of the current change: settle_s, or settle_s / 2 after a lead
  double previous_ = 0.0;  // distance to r of the last window that did not drift
  std::optional<double> max_interval_s_;
  std::optional<std::vector<float>> segment_sum_;
  std::vector<float> decoded_;
  std::optional<First> first_;
  std::optional<double> anchor_until_;
  double last_t_ = -std::numeric_limits<double>::infinity();
};

const std::vector<std::string>& param_names(const std::string& name) {
  static const std::vector<std::string> uniform{"every_s"}, offline{"n_segments", "rate_hz"},
      online{"threshold", "confirm", "min_interval_s", "max_interval_s"},
      changepoint{"threshold", "settle_s", "min_interval_s", "max_interval_s", "lead", "recheck"};
  if (name == "uniform") return uniform;
  if (name == "offline_segments") return offline;
  if (name == "changepoint") return changepoint;
  return online;
}

// p holds every parameter of its policy (policy_defaults, overridden by the caller's).
std::optional<double> opt_num(const json& p, const std::string& key) {
  if (p[key].is_null()) return std::nullopt;
  if (!p[key].is_number()) throw Error(EVJ_ERR_INVALID_ARGUMENT, "decode policy parameter " + key + " must be a number");
  return p[key].get<double>();
}

std::optional<int64_t> opt_int(const json& p, const std::string& key, const std::string& policy) {
  if (p[key].is_null()) return std::nullopt;
  if (!p[key].is_number_integer())
    throw Error(EVJ_ERR_INVALID_ARGUMENT, policy + ": " + key + " must be a" + (key == "confirm" ? "n integer >= 1" : " positive integer") + ", got " + p[key].dump());
  return p[key].get<int64_t>();
}

}  // namespace

json policy_defaults(const std::string& name) {
  if (name == "uniform") return {{"every_s", 1.0}};
  if (name == "offline_segments") return {{"n_segments", nullptr}, {"rate_hz", nullptr}};
  if (name == "online") return {{"threshold", 0.1}, {"confirm", 2}, {"min_interval_s", 1.0}, {"max_interval_s", nullptr}};
  if (name == "changepoint") return {{"threshold", 0.1}, {"settle_s", 1.0}, {"min_interval_s", 0.0}, {"max_interval_s", nullptr},
                                        {"lead", 0.5}, {"recheck", 0.2}};
  throw Error(EVJ_ERR_INVALID_ARGUMENT,
              "unknown decode policy '" + name + "'; choose one of: uniform, offline_segments, online, changepoint");
}

std::unique_ptr<Policy> make_policy(const std::string& name, const json& params) {
  json p = policy_defaults(name);  // validates the name; the caller's parameters override these
  if (!params.is_null() && !params.is_object()) throw Error(EVJ_ERR_INVALID_ARGUMENT, "decode policy parameters must be a JSON object");
  const json given = params.is_null() ? json::object() : params;
  const auto& allowed = param_names(name);
  std::string unknown, list;
  for (auto& [k, v] : given.items())
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) unknown += (unknown.empty() ? "" : ", ") + k;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  if (!unknown.empty())
    throw Error(EVJ_ERR_INVALID_ARGUMENT, "decode policy '" + name + "' has no parameter " + unknown + "; its parameters: " + list);
  p.update(given);
  if (name == "uniform") {
    auto every = opt_num(p, "every_s");
    require(every.has_value(), "uniform: every_s must be > 0, got None");
    return std::make_unique<Uniform>(*every);
  }
  if (name == "offline_segments") return std::make_unique<OfflineSegments>(opt_int(p, "n_segments", name), opt_num(p, "rate_hz"));
  if (name == "changepoint") {
    auto threshold = opt_num(p, "threshold"), settle = opt_num(p, "settle_s"), min_interval = opt_num(p, "min_interval_s");
    auto lead = opt_num(p, "lead"), recheck = opt_num(p, "recheck");
    require(threshold.has_value() && settle.has_value() && min_interval.has_value() && lead.has_value() && recheck.has_value(),
            "changepoint: threshold, settle_s, min_interval_s, lead and recheck must not be None");
    return std::make_unique<ChangePoint>(*threshold, *settle, *min_interval, opt_num(p, "max_interval_s"), *lead,
                                         *recheck);
  }
  auto threshold = opt_num(p, "threshold"), min_interval = opt_num(p, "min_interval_s");
  auto confirm = opt_int(p, "confirm", "online");
  require(threshold.has_value() && min_interval.has_value() && confirm.has_value(), "online: threshold, confirm and min_interval_s must not be None");
  return std::make_unique<Online>(*threshold, *confirm, *min_interval, opt_num(p, "max_interval_s"));
}

}  // namespace evj
