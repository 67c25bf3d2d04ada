@echo off
REM Brings the containerised AI gateway stack up (docker-compose.dev.yml) and
REM prints the URLs. Stop it with: docker compose -f docker-compose.dev.yml down
setlocal
cd /d "%~dp0\.."

docker compose version >nul 2>&1
if errorlevel 1 (
    echo Docker Compose is not available. Install Docker Desktop first.
    exit /b 1
)

if "%ADMIN_TOKEN%"=="" set ADMIN_TOKEN=dev-admin-token
docker compose -f docker-compose.dev.yml up -d --build
if errorlevel 1 (
    echo Starting the stack failed. See: docker compose -f docker-compose.dev.yml logs
    exit /b 1
)

echo Waiting for the gateway to become healthy...
set /a tries=0
:wait
curl -fsS -o nul http://localhost:8080/health >nul 2>&1
if not errorlevel 1 goto up
set /a tries+=1
if %tries% geq 180 (
    echo The gateway is not healthy. See: docker compose -f docker-compose.dev.yml logs gateway
    exit /b 1
)
timeout /t 1 /nobreak >nul
goto wait

:up
echo.
echo   Gateway (OpenAI API)  http://localhost:8080/v1
echo   Config-center admin   http://localhost:8000/api/v1   (Authorization: Bearer %ADMIN_TOKEN%)
echo   Token-service         http://localhost:8001
echo   Mock upstream         http://localhost:9000/v1
echo   Prometheus            http://localhost:9090
echo   Grafana               http://localhost:3001   (admin / admin123)
echo.
echo Create a demo namespace, model, instance and key (see docs/operations.md), e.g.:
echo   curl -X POST http://localhost:8000/api/v1/namespaces/demo/api-keys -H "Authorization: Bearer %ADMIN_TOKEN%" -H "Content-Type: application/json" -d "{\"name\":\"dev\"}"
echo Logs: docker compose -f docker-compose.dev.yml logs -f gateway
echo Stop: docker compose -f docker-compose.dev.yml down
endlocal
