#include "request_parser.hpp"

#include <cstring>

namespace http {

namespace {
request_parser* self(http_parser* p) { return static_cast<request_parser*>(p->data); }
}  // namespace

request_parser::request_parser(limits l) : limits_(l) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  settings_.on_message_begin = &on_message_begin;
  settings_.on_url = &on_url;
  settings_.on_header_field = &on_header_field;
  settings_.on_header_value = &on_header_value;
  settings_.on_headers_complete = &on_headers_complete;
  settings_.on_body = &on_body;
  settings_.on_message_complete = &on_message_complete;
}

int request_parser::feed(const char* data, std::size_t len, std::vector<request>& out) {
  if (error_ != 0) return error_;
  out_ = &out;
  const std::size_t n = http_parser_execute(&parser_, &settings_, data, len);
  out_ = nullptr;
  if (error_ != 0) return error_;
  const auto err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_HEADER_OVERFLOW) return error_ = 431;
  if (err != HPE_OK || parser_.upgrade || n != len) return error_ = 400;
  return 0;
}

bool request_parser::count_header(std::size_t n) {
  header_bytes_ += n;
  if (header_bytes_ <= limits_.max_header_bytes) return true;
  error_ = 431;
  return false;
}

int request_parser::on_message_begin(http_parser* p) {
  request_parser* s = self(p);
  s->cur_ = request{};
  s->header_bytes_ = 0;
  s->body_bytes_ = 0;
  s->started_ = true;
  s->headers_done_ = false;
  s->field_.clear();
  s->in_value_ = false;
  s->which_ = field::other;
  return 0;
}

int request_parser::on_url(http_parser* p, const char* at, std::size_t n) {
  request_parser* s = self(p);
  if (!s->count_header(n)) return -1;
  s->cur_.target.append(at, n);
  return 0;
}

void request_parser::end_header() {
  in_value_ = false;
  field_.clear();
  which_ = field::other;
}

int request_parser::on_header_field(http_parser* p, const char* at, std::size_t n) {
  request_parser* s = self(p);
  if (!s->count_header(n)) return -1;
  if (s->in_value_) s->end_header();
  for (std::size_t i = 0; i < n && s->field_.size() < 32; ++i) {
    char c = at[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    s->field_.push_back(c);
  }
  return 0;
}

int request_parser::on_header_value(http_parser* p, const char* at, std::size_t n) {
  request_parser* s = self(p);
  if (!s->count_header(n)) return -1;
  if (!s->in_value_) {
    s->in_value_ = true;
    if (s->field_ == "range") {
      s->which_ = field::range;
      s->cur_.has_range = true;
    } else if (s->field_ == "if-modified-since") {
      s->which_ = field::if_modified_since;
      s->cur_.has_if_modified_since = true;
    }
  }
  if (s->which_ == field::range) s->cur_.range.append(at, n);
  else if (s->which_ == field::if_modified_since) s->cur_.if_modified_since.append(at, n);
  return 0;
}

int request_parser::on_headers_complete(http_parser* p) {
  request_parser* s = self(p);
  s->headers_done_ = true;
  // A declared body over the limit is refused before a byte of it is read.
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->limits_.max_body_bytes) {
    s->error_ = 413;
    return -1;
  }
  s->cur_.method = p->method;
  s->cur_.major = p->http_major;
  s->cur_.minor = p->http_minor;
  return 0;
}

int request_parser::on_body(http_parser* p, const char*, std::size_t n) {
  request_parser* s = self(p);
  s->body_bytes_ += n;
  if (s->body_bytes_ > s->limits_.max_body_bytes) {
    s->error_ = 413;
    return -1;
  }
  return 0;
}

int request_parser::on_message_complete(http_parser* p) {
  request_parser* s = self(p);
  s->cur_.keep_alive = http_should_keep_alive(p) != 0;
  s->out_->push_back(std::move(s->cur_));
  s->started_ = false;
  s->headers_done_ = false;
  return 0;
}

}  // namespace http
