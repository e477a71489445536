# fitexplain client for R: submit a CSV, wait for the job, read the result, plot the importances.
# Needs httr and jsonlite (Debian: r-cran-httr, r-cran-jsonlite).
#
#   source("clients/r/fitexplain.R")
#   job <- fx_submit("tests/data/breast_cancer_dataset2.csv", "mlclassification", interpretability = "permutation")
#   res <- fx_result(fx_wait(job))
#   fx_plot_importance(res, file = "importance.png")
#
# The service and token come from the arguments, else FITEXPLAIN_URL and FITEXPLAIN_TOKEN.

suppressPackageStartupMessages({
  library(httr)
  library(jsonlite)
})

fx_url <- function(url = NULL) {
  found <- if (!is.null(url)) url else Sys.getenv("FITEXPLAIN_URL", "http://127.0.0.1:8000")
  sub("/+$", "", found)
}

fx_token <- function(token = NULL) {
  found <- if (!is.null(token)) token else Sys.getenv("FITEXPLAIN_TOKEN", "")
  if (!nzchar(found)) {
    stop(fx_condition("fitexplain_usage", "no token: pass token= or set FITEXPLAIN_TOKEN", code = "usage"))
  }
  found
}

# The exit codes shared with the Python command line (docs/clients.md), by kind of failure.
FX_EXIT <- c(
  ok = 0L, job_failed = 1L, usage = 2L, unfinished = 3L, not_found = 4L, unavailable = 5L, auth = 6L
)

# Every error of this client is an R condition of class "fitexplain_error" (then "error", "condition"),
# with `code` (the server's code, or the client's own), `status` (HTTP status, NA when there was no answer),
# `detail`, `column` and `exit_code` (an error answer also has its whole `body`, and the fields its code
# adds: `minimum`, `matches`...); a more specific class comes first:
#   fitexplain_status_error      an error answer: fitexplain_bad_request (400), fitexplain_authentication
#                                (401), fitexplain_permission_denied (403), fitexplain_not_found (404),
#                                fitexplain_conflict (409), fitexplain_too_large (413),
#                                fitexplain_unprocessable (422), fitexplain_rate_limited (429),
#                                fitexplain_server_error (5xx)
#   fitexplain_connection_error  no answer (refused, DNS, reset); fitexplain_timeout below it
#   fitexplain_job_failed        the job failed or was cancelled (code: the job's error code)
#   fitexplain_job_unfinished    fx_wait's timeout passed with the job still queued or running, or
#                                fx_download_model's with the model's file still being written
#   fitexplain_usage             a bad argument (the command line's bad usage)
fx_condition <- function(classes, message, code = NULL, status = NA_integer_, detail = message,
                         column = NULL, exit_code = FX_EXIT[["usage"]], ...) {
  structure(
    class = c(classes, "fitexplain_error", "error", "condition"),
    list(message = message, call = NULL, code = code, status = status, detail = detail, column = column,
         exit_code = exit_code, ...)
  )
}

FX_STATUS_CLASSES <- c(
  "400" = "fitexplain_bad_request", "401" = "fitexplain_authentication",
  "403" = "fitexplain_permission_denied", "404" = "fitexplain_not_found", "409" = "fitexplain_conflict",
  "413" = "fitexplain_too_large", "422" = "fitexplain_unprocessable", "429" = "fitexplain_rate_limited"
)

fx_status_exit <- function(status) {
  if (status %in% c(401, 403)) return(FX_EXIT[["auth"]])
  if (status == 404) return(FX_EXIT[["not_found"]])
  if (status == 429 || status >= 500) return(FX_EXIT[["unavailable"]])
  FX_EXIT[["usage"]]
}

# The condition for an error answer: its status's class, the server's code, detail and extra fields.
fx_error <- function(response) {
  text <- content(response, as = "text", encoding = "UTF-8")
  body <- tryCatch(fromJSON(text, simplifyVector = FALSE), error = function(e) list(detail = text))
  if (!is.list(body)) body <- list(detail = text)
  detail <- body$detail
  if (is.list(detail)) {  # request validation: a list of {loc, msg}
    detail <- paste(vapply(detail, function(item) {
      where <- paste(unlist(item$loc)[-1], collapse = ".")
      paste0(where, if (nzchar(where)) ": " else "", item$msg)
    }, character(1)), collapse = "; ")
  }
  if (is.null(detail)) detail <- ""
  status <- status_code(response)
  specific <- if (status >= 500) "fitexplain_server_error" else FX_STATUS_CLASSES[as.character(status)]
  classes <- c(if (!is.na(specific)) unname(specific), "fitexplain_status_error")
  label <- if (is.null(body$code)) "" else paste0(" ", body$code)
  condition <- fx_condition(
    classes, sprintf("HTTP %d%s: %s", status, label, detail), code = body$code, status = status,
    detail = detail, column = body$column, exit_code = fx_status_exit(status), body = body
  )
  for (name in setdiff(names(body), names(unclass(condition)))) {  # the code's own fields: `minimum`...
    condition[[name]] <- body[[name]]
  }
  condition
}

# The condition for a request that got no answer, naming the URL and what to check.
fx_transport_error <- function(error, target) {
  text <- conditionMessage(error)
  timed_out <- grepl("Timeout was reached|timed out", text, ignore.case = TRUE)
  hint <- if (timed_out) {
    "the service did not answer in time (options(fitexplain.timeout = seconds) waits longer)"
  } else {
    "is the service running there? (FITEXPLAIN_URL or url= names it)"
  }
  fx_condition(
    c(if (timed_out) "fitexplain_timeout", "fitexplain_connection_error"),
    sprintf("%s %s: %s; %s", if (timed_out) "no answer in time from" else "cannot reach", target, text, hint),
    code = if (timed_out) "timeout" else "connection_error", exit_code = FX_EXIT[["unavailable"]],
    url = target
  )
}

# The exit code the command line ends with for a condition (0 for none): see FX_EXIT.
fx_exit_code <- function(condition = NULL) {
  if (is.null(condition)) return(FX_EXIT[["ok"]])
  if (inherits(condition, "fitexplain_error")) return(condition$exit_code)
  FX_EXIT[["usage"]]
}

# One request; 429 and 503 are retried honouring Retry-After, and a request that got no answer when it is
# `idempotent` (GET, DELETE and cancel are), up to options(fitexplain.attempts) times (default 5).
# Every request waits at most options(fitexplain.timeout) seconds (default 120).
fx_request <- function(method, path, url = NULL, token = NULL, ..., idempotent = method %in% c("GET", "DELETE"),
                       attempts = getOption("fitexplain.attempts", 5)) {
  target <- paste0(fx_url(url), path)
  auth <- add_headers(Authorization = paste("Bearer", fx_token(token)))
  limit <- timeout(getOption("fitexplain.timeout", 120))
  for (attempt in seq_len(attempts)) {
    response <- tryCatch(VERB(method, target, auth, limit, ...), error = function(e) e)
    last <- attempt == attempts
    if (inherits(response, "error")) {
      if (last || !idempotent) stop(fx_transport_error(response, target))
      Sys.sleep(0.5 * 2^(attempt - 1))
      next
    }
    status <- status_code(response)
    if (status %in% c(429, 503) && !last) {
      wait <- suppressWarnings(as.numeric(headers(response)[["retry-after"]]))
      Sys.sleep(if (length(wait) == 1 && !is.na(wait)) min(wait, 30) else 0.5 * 2^(attempt - 1))
      next
    }
    if (status >= 400) stop(fx_error(response))
    return(response)
  }
}

# The path of a job's route: `job` is a job (a list with its id), its full id or a prefix of 6+ characters.
fx_job_path <- function(job, tail = "") {
  id <- if (is.list(job)) job$id else job
  if (!is.character(id) || length(id) != 1 || !nzchar(id)) {
    stop(fx_condition("fitexplain_usage", "a job, its id or a prefix of its id is needed", code = "usage"))
  }
  paste0("/jobs/", utils::URLencode(id, reserved = TRUE), tail)
}

fx_json <- function(response) {
  fromJSON(content(response, as = "text", encoding = "UTF-8"), simplifyVector = TRUE, simplifyDataFrame = FALSE)
}

# The query and multipart body of a request with SHAP's `background`: "sample:N" is a query parameter; a
# file path (CSV, Parquet or Arrow) or a data.frame (sent as CSV) is the `background` file part.
fx_with_background <- function(query, body, background) {
  if (is.null(background)) return(list(query = query, body = body))
  if (is.character(background) && startsWith(trimws(background), "sample:")) {
    query$background <- background
  } else {
    if (is.data.frame(background)) {
      path <- tempfile(fileext = ".csv")
      utils::write.csv(background, path, row.names = FALSE)
      background <- path
    }
    if (!file.exists(background)) stop("background must be \"sample:N\", a file or a data.frame")
    body$background <- upload_file(background)
  }
  list(query = query, body = body)
}

# Submit `file` (a CSV path) to `endpoint` with the endpoint's parameters as named arguments
# (interpretability = "shap", base_model = "RandomForestClassifier", return_pi = TRUE, ...). `background`:
# SHAP's background, "sample:N" or the rows of a file or data.frame of the features. Returns the job.
fx_submit <- function(file, endpoint = "mlclassification", ..., background = NULL, url = NULL, token = NULL) {
  params <- list(...)
  query <- lapply(params, function(value) {
    if (is.logical(value)) tolower(as.character(value)) else paste(value, collapse = ",")
  })
  sent <- fx_with_background(query, list(file = upload_file(file, type = "text/csv")), background)
  response <- fx_request(
    "POST", paste0("/", endpoint), url, token, query = sent$query, body = sent$body, encode = "multipart"
  )
  fx_json(response)
}

# A job as it stands now (`job`: a job, its id or a prefix of 6+ characters of its id).
fx_status <- function(job, url = NULL, token = NULL) {
  fx_json(fx_request("GET", fx_job_path(job), url, token))
}

# Your jobs, newest first: each with endpoint, model, data_filename, status, score and duration_seconds.
fx_jobs <- function(limit = 20, status = NULL, url = NULL, token = NULL) {
  query <- list(limit = limit)
  if (!is.null(status)) query$status <- status
  fx_json(fx_request("GET", "/jobs", url, token, query = query))$items
}

# Cancel a queued or running job (POST /jobs/{id}/cancel); returns the cancelled job. A job that already
# succeeded or failed is kept, and this stops with a fitexplain_conflict (code "job_finished").
fx_cancel <- function(job, url = NULL, token = NULL) {
  fx_json(fx_request("POST", fx_job_path(job, "/cancel"), url, token, idempotent = TRUE))
}

# Delete a finished job with its result and upload (DELETE /jobs/{id}); returns NULL invisibly. A job
# that has not finished is cancelled instead, and returned (delete it again once it has stopped).
fx_delete <- function(job, url = NULL, token = NULL) {
  response <- fx_request("DELETE", fx_job_path(job), url, token)
  if (status_code(response) == 204) return(invisible(NULL))
  invisible(fx_json(response))
}

# Poll the job until it finishes (0.1 s backing off to 1 s), with a text progress bar and the job's message.
# Returns the finished job; stops with a fitexplain_job_failed if it failed or was cancelled, and with a
# fitexplain_job_unfinished once `timeout` seconds have passed.
fx_wait <- function(job, timeout = Inf, progress = interactive(), url = NULL, token = NULL) {
  started <- Sys.time()
  delay <- 0.1
  bar <- if (progress) txtProgressBar(min = 0, max = 1, style = 3) else NULL
  on.exit(if (!is.null(bar)) close(bar))
  repeat {
    # A long poll: the server holds the request until the job finishes (2 s at most, the bar's pace).
    left <- timeout - as.numeric(difftime(Sys.time(), started, units = "secs"))
    hold <- max(0, min(2, left))
    asked <- Sys.time()
    query <- if (hold > 0) list(wait = sprintf("%.3f", hold)) else list()
    state <- fx_json(fx_request("GET", fx_job_path(job), url, token, query = query))
    if (!is.null(bar)) setTxtProgressBar(bar, if (state$status == "succeeded") 1 else state$progress)
    if (state$status %in% c("succeeded", "failed", "cancelled")) break
    if (as.numeric(difftime(Sys.time(), started, units = "secs")) >= timeout) {
      stop(fx_condition(
        "fitexplain_job_unfinished", sprintf("job %s still %s after %s s", state$id, state$status, timeout),
        code = "unfinished", exit_code = FX_EXIT[["unfinished"]], job = state
      ))
    }
    if (as.numeric(difftime(Sys.time(), asked, units = "secs")) < hold / 2) {
      Sys.sleep(delay)  # a server from before long polls answered at once: poll, backing off
      delay <- min(delay * 1.5, 1)
    }
  }
  if (state$status != "succeeded") {
    error <- state$error
    code <- if (is.null(error)) paste0("job_", state$status) else error$code
    stop(fx_condition(
      "fitexplain_job_failed",
      sprintf("job %s %s: %s", state$id, state$status, if (is.null(error)) state$status else error$message),
      code = code, exit_code = FX_EXIT[["job_failed"]], job = state
    ))
  }
  state
}

# The result of a succeeded job, as a list in techtonique's shape: res$interpretability$feature_names
# (one method), or a list of such objects (several methods, in the order asked).
fx_result <- function(job, url = NULL, token = NULL) {
  fx_json(fx_request("GET", fx_job_path(job, "/result"), url, token))
}

# The model card of a succeeded job (GET /jobs/{id}/model): estimator, libraries, features (name, dtype,
# categories in code order), target, metrics, background, size_bytes, sha256 and the `formats` that
# fx_download_model offers. A job without a model stops with a fitexplain_conflict (its code says why).
fx_model <- function(job, url = NULL, token = NULL) {
  fx_json(fx_request("GET", fx_job_path(job, "/model"), url, token))
}

# Write a succeeded job's model in `format` ("native": xgboost UBJSON, LightGBM text or CatBoost cbm;
# "skops"; or another of the card's formats) to `path` (a directory: the server's file name in it).
# A format a worker writes on its first download (skops, onnx, mlflow, bundle) answers 202 meanwhile: the
# download is asked again after each Retry-After, stopping with a fitexplain_job_unfinished after
# `timeout` seconds. Returns the file's path invisibly.
fx_download_model <- function(job, path = ".", format = "native", timeout = 600, url = NULL, token = NULL) {
  started <- Sys.time()
  repeat {
    response <- fx_request("GET", fx_job_path(job, "/model/download"), url, token, query = list(format = format))
    if (status_code(response) != 202) break
    left <- timeout - as.numeric(difftime(Sys.time(), started, units = "secs"))
    if (left <= 0) {
      stop(fx_condition(
        "fitexplain_job_unfinished",
        sprintf("job %s's model is still being written as %s after %s s", job, format, timeout),
        code = "model_converting", exit_code = FX_EXIT[["unfinished"]]
      ))
    }
    wait <- suppressWarnings(as.numeric(headers(response)[["retry-after"]]))
    Sys.sleep(min(if (length(wait) == 1 && !is.na(wait)) wait else 2, left))
  }
  if (dir.exists(path)) {
    disposition <- headers(response)[["content-disposition"]]
    name <- if (is.null(disposition)) "model.bin" else sub('.*filename="([^"]+)".*', "\\1", disposition)
    path <- file.path(path, name)
  }
  writeBin(content(response, as = "raw"), path)
  invisible(path)
}

# Score (and explain) the rows of `file` (CSV, Parquet or Arrow; the target may be absent) with the model a
# succeeded job kept: POST /jobs/{id}/predict with its parameters as named arguments (top_n = 3,
# threshold = 0.7, below = TRUE, id_column = "id", strict = TRUE, return_pi = TRUE); `background` as for
# fx_submit, for this job only ("sample:N": N rows of the model's own). Returns the predict job;
# fx_result(fx_wait(job)) gives y_pred, proba, interpretability, explained_rows and reasons.
fx_predict <- function(job, file, interpretability = "shap", ..., background = NULL, url = NULL, token = NULL) {
  params <- c(list(interpretability = interpretability), list(...))
  query <- lapply(params, function(value) {
    if (is.logical(value)) tolower(as.character(value)) else paste(value, collapse = ",")
  })
  sent <- fx_with_background(query, list(file = upload_file(file)), background)
  response <- fx_request(
    "POST", fx_job_path(job, "/predict"), url, token, query = sent$query, body = sent$body,
    encode = "multipart"
  )
  fx_json(response)
}

# The flat explanation object of `method` ("permutation" or "shap"), or NULL.
fx_explanation <- function(result, method) {
  found <- result$interpretability
  if (!is.null(found$method)) found <- list(found)
  for (item in found) if (identical(item$method, method)) return(item)
  NULL
}

# A horizontal bar chart of the importances (base graphics): permutation importance (mean ± std) when the
# result has it, else the mean |SHAP value| per feature. Draws into `file` (PNG) when given.
fx_plot_importance <- function(result, top = 20, file = NULL, width = 700, height = 500) {
  permutation <- fx_explanation(result, "permutation")
  shap <- fx_explanation(result, "shap")
  if (!is.null(permutation)) {
    values <- unlist(permutation$importances_mean)
    spread <- unlist(permutation$importances_std)
    names(values) <- unlist(permutation$feature_names)
    label <- "mean drop in score when permuted (± std)"
    title <- "Permutation importance"
  } else if (!is.null(shap)) {
    raw <- abs(shap$values)  # rows x features (x classes)
    values <- if (length(dim(raw)) == 3) apply(raw, 2, sum) / dim(raw)[1] else colMeans(raw)
    spread <- NULL
    names(values) <- unlist(shap$feature_names)
    label <- "mean |SHAP value| (summed over classes)"
    title <- "SHAP importance"
  } else {
    stop("the result has no permutation or SHAP explanation", call. = FALSE)
  }
  order <- head(order(values, decreasing = TRUE), top)
  order <- rev(order)
  extra <- if (is.null(spread)) 0 else spread[order]
  if (!is.null(file)) {
    png(file, width = width, height = height)
    on.exit(dev.off())
  }
  old <- par(mar = c(4.5, 12, 3, 1))
  on.exit(par(old), add = TRUE)
  centres <- barplot(values[order], horiz = TRUE, las = 1, col = "#3b75af", border = NA,
                     xlab = label, main = title, cex.names = 0.8,
                     xlim = range(0, values[order] - extra, values[order] + extra))
  drawn <- if (is.null(spread)) integer(0) else which(spread[order] > 0)  # no zero-length arrows
  if (length(drawn) > 0) {
    low <- values[order] - spread[order]
    high <- values[order] + spread[order]
    arrows(low[drawn], centres[drawn], high[drawn], centres[drawn],
           angle = 90, code = 3, length = 0.03, col = "#555555")
  }
  invisible(values[order])
}

# The command line, for scripts that shell out to R:
#   Rscript clients/r/fitexplain.R submit FILE ENDPOINT [name=value ...] [--wait]
#   Rscript clients/r/fitexplain.R status|wait|result|cancel|delete JOB     (JOB: an id or a 6+ prefix)
#   Rscript clients/r/fitexplain.R jobs [LIMIT]
#   Rscript clients/r/fitexplain.R model JOB | model download JOB [FORMAT] [PATH]
# prints JSON on standard output, or one line on standard error, and exits with the table's code:
# 0 ok, 1 job failed or cancelled, 2 bad usage or a request the service rejected, 3 job not finished,
# 4 not found, 5 service unreachable or unavailable, 6 authentication or permission.
FX_USAGE <- paste(
  "usage: fitexplain.R submit FILE ENDPOINT [name=value ...] [--wait] | status JOB | wait JOB [SECONDS]",
  "| result JOB | cancel JOB | delete JOB | jobs [LIMIT] | model JOB | model download JOB [FORMAT] [PATH]"
)

fx_command <- function(args) {
  usage <- function() stop(fx_condition("fitexplain_usage", FX_USAGE, code = "usage"))
  if (length(args) == 0) usage()
  command <- args[1]
  rest <- args[-1]
  one <- function() if (length(rest) == 1) rest[1] else usage()
  switch(command,
    submit = {
      waiting <- "--wait" %in% rest
      rest <- setdiff(rest, "--wait")
      if (length(rest) < 2 || !all(grepl("=", rest[-(1:2)], fixed = TRUE))) usage()
      pairs <- strsplit(rest[-(1:2)], "=", fixed = TRUE)
      params <- setNames(lapply(pairs, function(p) paste(p[-1], collapse = "=")), vapply(pairs, `[`, "", 1))
      job <- do.call(fx_submit, c(list(rest[1], rest[2]), params))
      if (waiting) fx_wait(job, progress = FALSE) else job
    },
    status = fx_status(one()),
    wait = {
      if (!(length(rest) %in% 1:2)) usage()
      seconds <- if (length(rest) == 2) suppressWarnings(as.numeric(rest[2])) else Inf
      if (is.na(seconds)) usage()
      fx_wait(rest[1], timeout = seconds, progress = FALSE)
    },
    result = fx_result(one()),
    cancel = fx_cancel(one()),
    delete = {
      left <- fx_delete(one())
      if (is.null(left)) list(deleted = rest[1]) else left
    },
    jobs = fx_jobs(limit = if (length(rest) == 1) rest[1] else 20),
    model = {
      if (length(rest) == 1) return(fx_model(rest[1]))
      if (length(rest) < 2 || length(rest) > 4 || rest[1] != "download") usage()
      format <- if (length(rest) >= 3) rest[3] else "native"
      path <- if (length(rest) == 4) rest[4] else "."
      list(path = fx_download_model(rest[2], path = path, format = format))
    },
    usage()
  )
}

# Runs one command; returns its exit code.
fx_main <- function(args = commandArgs(trailingOnly = TRUE)) {
  tryCatch({
    cat(toJSON(fx_command(args), auto_unbox = TRUE, null = "null", digits = NA), "\n", sep = "")
    fx_exit_code()
  }, error = function(e) {
    message("fitexplain: ", conditionMessage(e))
    fx_exit_code(e)
  })
}

if (sys.nframe() == 0L) quit(save = "no", status = fx_main())
