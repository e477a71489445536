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
  if (!nzchar(found)) stop("no token: pass token= or set FITEXPLAIN_TOKEN", call. = FALSE)
  found
}

# An R condition of class "fitexplain_error" carrying the HTTP status, the server's code and the column.
fx_error <- function(response) {
  body <- tryCatch(
    fromJSON(content(response, as = "text", encoding = "UTF-8"), simplifyVector = FALSE),
    error = function(e) list(detail = content(response, as = "text", encoding = "UTF-8"))
  )
  detail <- body$detail
  if (is.list(detail)) {  # request validation: a list of {loc, msg}
    detail <- paste(vapply(detail, function(item) {
      where <- paste(unlist(item$loc)[-1], collapse = ".")
      paste0(where, if (nzchar(where)) ": " else "", item$msg)
    }, character(1)), collapse = "; ")
  }
  status <- status_code(response)
  code <- if (is.null(body$code)) "" else paste0(" ", body$code)
  message <- sprintf("HTTP %d%s: %s", status, code, detail)
  structure(
    class = c("fitexplain_error", "error", "condition"),
    list(message = message, call = NULL, status = status, code = body$code, column = body$column)
  )
}

# One request; 429 and 503 are retried honouring Retry-After; network errors only for GET and DELETE.
fx_request <- function(method, path, url = NULL, token = NULL, ..., attempts = 5) {
  target <- paste0(fx_url(url), path)
  auth <- add_headers(Authorization = paste("Bearer", fx_token(token)))
  for (attempt in seq_len(attempts)) {
    response <- tryCatch(VERB(method, target, auth, ...), error = function(e) e)
    last <- attempt == attempts
    if (inherits(response, "error")) {
      if (last || !(method %in% c("GET", "DELETE"))) stop(response)
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

fx_json <- function(response) {
  fromJSON(content(response, as = "text", encoding = "UTF-8"), simplifyVector = TRUE, simplifyDataFrame = FALSE)
}

# Submit `file` (a CSV path) to `endpoint` with the endpoint's parameters as named arguments
# (interpretability = "shap", base_model = "RandomForestClassifier", return_pi = TRUE, ...). Returns the job.
fx_submit <- function(file, endpoint = "mlclassification", ..., url = NULL, token = NULL) {
  params <- list(...)
  query <- lapply(params, function(value) {
    if (is.logical(value)) tolower(as.character(value)) else paste(value, collapse = ",")
  })
  response <- fx_request(
    "POST", paste0("/", endpoint), url, token,
    query = query, body = list(file = upload_file(file, type = "text/csv")), encode = "multipart"
  )
  fx_json(response)
}

# Poll the job until it finishes (0.1 s backing off to 1 s), with a text progress bar and the job's message.
# Returns the finished job; stops with a fitexplain_error if it failed or was cancelled.
fx_wait <- function(job, timeout = Inf, progress = interactive(), url = NULL, token = NULL) {
  id <- if (is.list(job)) job$id else job
  started <- Sys.time()
  delay <- 0.1
  bar <- if (progress) txtProgressBar(min = 0, max = 1, style = 3) else NULL
  on.exit(if (!is.null(bar)) close(bar))
  repeat {
    # A long poll: the server holds the request until the job finishes (2 s at most, the bar's pace).
    left <- timeout - as.numeric(difftime(Sys.time(), started, units = "secs"))
    hold <- max(0, min(2, left))
    asked <- Sys.time()
    path <- paste0("/jobs/", id, if (hold > 0) sprintf("?wait=%.3f", hold) else "")
    state <- fx_json(fx_request("GET", path, url, token))
    if (!is.null(bar)) setTxtProgressBar(bar, if (state$status == "succeeded") 1 else state$progress)
    if (state$status %in% c("succeeded", "failed", "cancelled")) break
    if (as.numeric(difftime(Sys.time(), started, units = "secs")) > timeout) {
      stop(sprintf("job %s still %s after %s s", id, state$status, timeout), call. = FALSE)
    }
    if (as.numeric(difftime(Sys.time(), asked, units = "secs")) < hold / 2) {
      Sys.sleep(delay)  # a server from before long polls answered at once: poll, backing off
      delay <- min(delay * 1.5, 1)
    }
  }
  if (state$status != "succeeded") {
    error <- state$error
    stop(structure(
      class = c("fitexplain_error", "error", "condition"),
      list(
        message = sprintf("job %s %s: %s", id, state$status, if (is.null(error)) "" else error$message),
        call = NULL, status = NA, code = error$code, column = NULL
      )
    ))
  }
  state
}

# The result of a succeeded job, as a list in techtonique's shape: res$interpretability$feature_names
# (one method), or a list of such objects (several methods, in the order asked).
fx_result <- function(job, url = NULL, token = NULL) {
  id <- if (is.list(job)) job$id else job
  fx_json(fx_request("GET", paste0("/jobs/", id, "/result"), url, token))
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
