"""Drives a node's web console in Debian's headless Chromium (Selenium + chromedriver).

Run by tests/dashboard.rs against a cluster it started with scripts/cluster.sh, in two
phases:

  find     open the dashboard URL (with #token=...), find the task by name on the task
           search, open its page, draw the workflow, see the schedule's runs; print
           "leader=<id>" as the page saw it.
  failover after the test killed that leader: wait until the page shows another leader.

Every wait has a deadline and says what it saw when it runs out. Screenshots go to --shots.
"""

import argparse
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WAIT_S = 30.0


def browser(chromedriver: str) -> webdriver.Chrome:
    options = Options()
    for arg in [
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--ignore-certificate-errors",  # the cluster's own CA, which the browser does not know
        "--window-size=1360,900",
    ]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def wait(driver, what, check):
    """Polls check(driver) until it returns something truthy, for at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    last_error = None
    while time.monotonic() < deadline:
        try:
            found = check(driver)
            if found:
                return found
        except Exception as error:  # the page re-renders every 2 s: elements go stale
            last_error = error
        time.sleep(0.2)
    banner = driver.find_element(By.ID, "node").get_attribute("textContent")
    error = driver.find_element(By.ID, "error").get_attribute("textContent")
    raise SystemExit(
        f"timed out after {WAIT_S} s waiting for {what}; banner {banner!r}, error box {error!r}, "
        f"last exception {last_error!r}, url {driver.current_url}"
    )


def banner_leader(driver):
    leader = driver.find_element(By.ID, "node").get_attribute("data-leader-id")
    return int(leader) if leader and leader != "0" else None


def shot(driver, shots, name):
    path = os.path.join(shots, f"{name}.png")
    driver.save_screenshot(path)
    print(f"screenshot {path}")


def find(driver, args):
    driver.get(args.url)
    leader = wait(driver, "the banner to name a leader", banner_leader)
    wait(driver, "the members table to show the leader",
         lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-role="leader"][data-node-id="{leader}"]'))
    wait(driver, "the queue table", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-queue]"))
    shot(driver, args.shots, "dashboard-cluster")

    # Search by name through the form, as a person would.
    driver.find_element(By.LINK_TEXT, "Tasks").click()
    form = wait(driver, "the search form", lambda d: d.find_element(By.ID, "search"))
    form.find_element(By.NAME, "name").send_keys(args.task_name)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    row = f'tr[data-task-id="{args.task_id}"]'
    wait(driver, f"task {args.task_id} in the search results", lambda d: d.find_elements(By.CSS_SELECTOR, row))
    shot(driver, args.shots, "dashboard-tasks")

    driver.find_element(By.CSS_SELECTOR, f"{row} a").click()
    wait(driver, "the task page to show it succeeded",
         lambda d: "succeeded" in d.find_element(By.CSS_SELECTOR, 'dd[data-fact="state"]').text)
    wait(driver, "its output tail", lambda d: args.task_name in d.find_element(By.TAG_NAME, "pre").text)
    shot(driver, args.shots, "dashboard-task")

    driver.get(args.url.split("#")[0] + f"#/workflow/{args.workflow_id}")
    wait(driver, "the workflow's DAG with every task succeeded",
         lambda d: len(d.find_elements(By.CSS_SELECTOR, '#dag g[data-state="succeeded"]')) == args.workflow_tasks)
    shot(driver, args.shots, "dashboard-workflow")

    driver.find_element(By.LINK_TEXT, "Schedules").click()
    link = f'tr[data-schedule="{args.schedule}"] a'
    wait(driver, f"schedule {args.schedule} in the list", lambda d: d.find_elements(By.CSS_SELECTOR, link))
    driver.find_element(By.CSS_SELECTOR, link).click()
    wait(driver, "two of its runs fired", lambda d: len(d.find_elements(By.CSS_SELECTOR, 'tr[data-run="fired"]')) >= 2)
    shot(driver, args.shots, "dashboard-schedule")
    print(f"leader={leader}", flush=True)


def failover(driver, args):
    driver.get(args.url)
    old = args.old_leader
    new = wait(driver, f"the banner to name a leader other than node {old}",
               lambda d: (banner_leader(d) or old) != old and banner_leader(d))
    wait(driver, f"the members table to show node {new} leading and node {old} unreachable",
         lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-role="leader"][data-node-id="{new}"]')
         and d.find_elements(By.CSS_SELECTOR, f'tr[data-role="unreachable"][data-node-id="{old}"]'))
    shot(driver, args.shots, "dashboard-failover")
    print(f"leader={new}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["find", "failover"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--task-name")
    parser.add_argument("--task-id")
    parser.add_argument("--workflow-id")
    parser.add_argument("--workflow-tasks", type=int)
    parser.add_argument("--schedule")
    parser.add_argument("--old-leader", type=int)
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    driver = browser(args.chromedriver)
    try:
        find(driver, args) if args.phase == "find" else failover(driver, args)
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
