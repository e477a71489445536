# Driven by tests/service/test_client_r.py: Rscript check_errors.R REPO CASES_JSON
# Provokes each kind of error of the R client against the real stack (FITEXPLAIN_URL, FITEXPLAIN_TOKEN)
# and prints one JSON report: for each case, the condition's classes, code, status and exit code.
args <- commandArgs(trailingOnly = TRUE)
source(file.path(args[1], "clients", "r", "fitexplain.R"))
cases <- jsonlite::fromJSON(args[2], simplifyVector = TRUE)
options(fitexplain.attempts = 1)  # a refused connection is not retried here: one attempt shows its class

caught <- function(expr) {
  found <- tryCatch({
    expr
    NULL
  }, error = function(e) e)
  if (is.null(found)) return(list(raised = FALSE))
  list(
    raised = TRUE, class = class(found), code = found$code,
    status = if (is.na(found$status)) NULL else found$status,
    exit_code = found$exit_code, message = conditionMessage(found), column = found$column,
    minimum = found$minimum
  )
}

report <- list()
job <- fx_submit(cases$iris, "gbdtclassification", n_estimators = 5)
prefix <- substr(job$id, 1, 8)
done <- fx_wait(prefix, timeout = 120)
report$prefix <- list(full = job$id, waited = done$id, status = fx_status(toupper(prefix))$id)
report$too_short <- caught(fx_status(substr(job$id, 1, 5)))
report$not_found <- caught(fx_status(strrep("0", 32)))
report$finished_cancel <- caught(fx_cancel(prefix))
report$kept <- fx_status(job$id)$status
report$listed <- Filter(function(item) identical(item$id, job$id), fx_jobs(limit = 100))[[1]][
  c("data_filename", "model", "score")
]

slow <- do.call(fx_submit, c(list(cases$slow_csv, "gbdtclassification"), cases$slow_params))
report$unfinished <- caught(fx_wait(slow, timeout = 0.2))
report$cancelled <- fx_cancel(substr(slow$id, 1, 6))$status
report$job_failed <- caught(fx_wait(slow, timeout = 60))

report$deleted <- is.null(fx_delete(done))
report$deleted_then <- caught(fx_status(job$id))
report$authentication <- caught(fx_status(prefix, token = "fx_wrong"))
report$unprocessable <- caught(fx_submit(cases$non_numeric, "mlclassification"))
report$refused <- caught(fx_status(prefix, url = cases$refused_url))
options(fitexplain.timeout = 1)
report$timeout <- caught(fx_status(prefix, url = cases$silent_url))
cat(jsonlite::toJSON(report, auto_unbox = TRUE, null = "null"))
