// POST /v1/uploads (streamed), GET/DELETE /v1/uploads/{id}.
#include <boost/asio/post.hpp>
#include <filesystem>

#include "api/api_util.h"
#include "uploads/upload_ingest.h"
#include "api/routes.h"
#include "app.h"

namespace tsm::server {

namespace {

json upload_json(const UploadRecord& u) {
  return {{"id", u.id},         {"sha256", u.sha256},
          {"format", u.format}, {"name", u.name},
          {"size_bytes", u.size_bytes}, {"tensors", json::parse(u.tensors_json)},
          {"created_unix", u.created_unix}, {"url", "/v1/uploads/" + u.id}};
}

/// Removes blob `sha` (and its extracted model directory) unless an upload or artifact row still
/// references it; the caller holds the blob store's refs_mutex(). Best effort: a leftover is only
/// unreferenced space, never a broken row.
void drop_if_unreferenced(App& app, const std::string& sha) {
  try {
    if (app.store->blob_refs(sha) != 0) return;
    app.blobs->remove(sha);
    std::error_code ec;
    std::filesystem::remove_all(app.models_dir + "/" + sha, ec);
  } catch (const std::exception&) {
  }
}

}  // namespace

void post_upload(App& app, RequestPtr req, Respond respond) {
  IngestOptions opt;
  opt.declared_format = req->q("format");
  if (opt.declared_format.empty()) opt.declared_format = format_from_content_type(req->header(http::field::content_type));
  if (!opt.declared_format.empty() && opt.declared_format != "npy" && opt.declared_format != "safetensors" &&
      opt.declared_format != "tar" && opt.declared_format != "json" && opt.declared_format != "raw")
    throw HttpError(http::status::bad_request, "format: '" + opt.declared_format + "' is not one of npy, safetensors, tar, json, raw",
                    {{"field", "format"}});
  opt.name = req->q("name");
  opt.dtype = req->q("dtype");
  opt.shape = req->q("shape");
  opt.durable = app.config.fsync_uploads;
  opt.tar = {app.config.effective_tar_max_extracted_bytes(), app.config.effective_tar_max_member_bytes(),
             static_cast<uint64_t>(app.config.tar_max_members), app.config.tar_max_ratio};
  // Validation reads the whole file: the blocking pool, never the I/O thread.
  boost::asio::post(app.blocking, [&app, req, respond, opt] {
    try {
      UploadRecord u = ingest_upload(req->upload, opt, *app.blobs, app.models_dir, [&app](UploadRecord& u) {
        u.id = new_id("u_");
        try {
          app.store->insert_upload(u);
        } catch (...) {
          // No row (a full disk is SQLITE_FULL, a 507): the blob stored for it goes too.
          drop_if_unreferenced(app, u.sha256);
          throw;
        }
      });
      req->upload.reset();
      auto r = json_response(http::status::created, upload_json(u));
      r.set(http::field::location, "/v1/uploads/" + u.id);
      respond(std::move(r));
    } catch (const std::exception& e) {
      req->upload.reset();
      respond(problem_for(e));
    }
  });
}

void get_upload(App& app, RequestPtr req, Respond respond) {
  auto u = is_id(req->params[0], "u_") ? app.store->get_upload(req->params[0]) : std::nullopt;
  if (!u) throw HttpError(http::status::not_found, "no upload '" + req->params[0] + "'");
  respond(json_response(http::status::ok, upload_json(*u)));
}

void delete_upload(App& app, RequestPtr req, Respond respond) {
  auto u = is_id(req->params[0], "u_") ? app.store->get_upload(req->params[0]) : std::nullopt;
  std::lock_guard refs(app.blobs->refs_mutex());  // the row and, when it was the last, the blob
  if (!u || !app.store->delete_upload(u->id)) throw HttpError(http::status::not_found, "no upload '" + req->params[0] + "'");
  drop_if_unreferenced(app, u->sha256);
  StringResponse r{http::status::no_content, 11};
  respond(std::move(r));
}

}  // namespace tsm::server
